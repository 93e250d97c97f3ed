//! Miniconfigs: the short list of Kconfig symbols a target asks for, expanded
//! to a full `.config` by the source tree's own Kconfig, and shrunk back.
//!
//! A miniconfig means "`make allnoconfig`, plus these": every symbol it does
//! not name is `n` unless something selects it or it has no prompt. This
//! works for Linux and busybox alike; [`make_expander`] knows how to drive
//! each one's `make`.
//!
//! Nothing here runs a process itself. Expansion goes through a closure
//! (`run` for [`make_expander`], `expand` for [`shrink`]), so the caller
//! decides how commands run (in the airlock, with its cleared environment).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;

use camino::{Utf8Path, Utf8PathBuf};
use miette::{Diagnostic, NamedSource, SourceSpan};

/// One symbol requested by a miniconfig, and where it was requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The symbol without its `CONFIG_` prefix, e.g. `SERIAL_SH_SCI`.
    pub symbol: String,
    /// The value exactly as Kconfig writes it: `y`, `m`, `n`, `0x0c000000`,
    /// `123`, or a string with its quotes, `"ttySC1"`.
    pub value: String,
    /// The file the entry came from.
    pub file: Utf8PathBuf,
    /// Its line in that file, 1-based.
    pub line: usize,
}

/// A miniconfig: at most one entry per symbol, in the order the symbols
/// first appeared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Miniconfig {
    pub entries: Vec<Entry>,
}

/// Everything that can go wrong reading, expanding or shrinking a config.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum KconfigError {
    #[error("cannot read `{path}`: {source}")]
    #[diagnostic(code(kconfig::read))]
    Read {
        path: Utf8PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot write `{path}`: {source}")]
    #[diagnostic(code(kconfig::write))]
    Write {
        path: Utf8PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Malformed(Box<MalformedLine>),

    #[error("{}", missing_message(.missing))]
    #[diagnostic(code(kconfig::missing))]
    Missing { missing: Vec<MissingSymbol> },

    #[error("{}", unreproducible_message(*.candidates, .differences))]
    #[diagnostic(code(kconfig::unreproducible))]
    Unreproducible {
        /// How many symbols were asked for.
        candidates: usize,
        differences: Vec<Difference>,
    },

    #[error("expanding a miniconfig with `{command}` failed: {message}")]
    #[diagnostic(code(kconfig::expand))]
    Expand { command: String, message: String },

    #[error(
        "expanding a miniconfig with `{command}` did not converge after {rounds} rounds: \
         each round enabled symbols the previous one had not seen ({symbols})"
    )]
    #[diagnostic(code(kconfig::diverge))]
    Diverged {
        command: String,
        rounds: usize,
        symbols: String,
    },
}

/// A line of a miniconfig that is not one (the source is kept for the
/// caret in the rendered diagnostic).
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("malformed line in `{file}` at line {line}, column {column}: {reason}")]
#[diagnostic(
    code(kconfig::malformed),
    help(
        "each line is `CONFIG_NAME=y` (or m, n, a number, 0x-hex, a \"quoted string\"), \
         `# CONFIG_NAME is not set`, a `#` comment or blank"
    )
)]
pub struct MalformedLine {
    pub file: Utf8PathBuf,
    pub line: usize,
    pub column: usize,
    pub reason: String,
    #[source_code]
    pub source_code: NamedSource<String>,
    #[label("{label}")]
    pub span: SourceSpan,
    pub label: String,
}

/// A requested symbol that came out of the expansion with another value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingSymbol {
    pub entry: Entry,
    /// The value in `.config`, or `None` when the symbol is not there at all.
    pub found: Option<String>,
}

/// A symbol whose value differs between two configs (`None`: absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub symbol: String,
    pub expected: Option<String>,
    pub found: Option<String>,
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

fn missing_message(missing: &[MissingSymbol]) -> String {
    let mut s = plural(missing.len(), "symbol", "symbols");
    s.push_str(" from the miniconfig did not survive `make allnoconfig`: ");
    let items: Vec<String> = missing
        .iter()
        .map(|m| {
            let e = &m.entry;
            let found = match &m.found {
                None => "is not set".to_string(),
                Some(v) => format!("is {v}"),
            };
            format!(
                "{} ({}:{}) {found}",
                render_line(&e.symbol, &e.value),
                e.file,
                e.line
            )
        })
        .collect();
    s.push_str(&items.join("; "));
    let (they, them) = if missing.len() == 1 {
        (
            "it does not exist in this source tree or its dependencies are",
            "it",
        )
    } else {
        (
            "they do not exist in this source tree or their dependencies are",
            "them",
        )
    };
    let _ = write!(s, " — {they} missing");
    if missing.iter().any(|m| m.entry.value == "n") {
        s.push_str(" (a symbol asked to be `n` may be selected by another one)");
    }
    let _ = write!(s, "; run `make menuconfig` and search for {them}");
    s
}

fn show(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("absent")
}

fn unreproducible_message(candidates: usize, differences: &[Difference]) -> String {
    const SHOWN: usize = 10;
    let mut s = format!(
        "the full .config cannot be reproduced from a miniconfig: asking `make allnoconfig` for \
         the {} that differ from a plain allnoconfig gives a .config that differs in {}: ",
        plural(candidates, "symbol", "symbols"),
        plural(differences.len(), "symbol", "symbols"),
    );
    let items: Vec<String> = differences
        .iter()
        .take(SHOWN)
        .map(|d| {
            format!(
                "CONFIG_{} is {}, expected {}",
                d.symbol,
                show(&d.found),
                show(&d.expected)
            )
        })
        .collect();
    s.push_str(&items.join("; "));
    if differences.len() > SHOWN {
        let _ = write!(s, " (and {} more)", differences.len() - SHOWN);
    }
    s.push_str(
        " — the .config was probably written by another version of this source tree or with \
         another compiler; run `make oldconfig` on it with this tree first",
    );
    s
}

fn render_line(symbol: &str, value: &str) -> String {
    if value == "n" {
        format!("# CONFIG_{symbol} is not set")
    } else {
        format!("CONFIG_{symbol}={value}")
    }
}

/// Why a line is malformed: 0-based byte offset in the line, length of the
/// offending part, the message and the label under the caret.
struct LineError {
    offset: usize,
    len: usize,
    reason: String,
    label: String,
}

fn is_symbol_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `# CONFIG_X is not set` → `Some("X")`.
fn not_set_symbol(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("# CONFIG_")?;
    let sym = rest.strip_suffix(" is not set")?;
    (!sym.is_empty() && sym.chars().all(is_symbol_char)).then_some(sym)
}

fn valid_value(v: &str) -> bool {
    if matches!(v, "y" | "m" | "n") {
        return true;
    }
    if let Some(hex) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        return !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    let digits = v.strip_prefix('-').unwrap_or(v);
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
}

/// Length of a quoted string at the start of `v` (including both quotes),
/// or `None` when it is not terminated.
fn quoted_len(v: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in v.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// Parses one line: `Ok(None)` for blank lines and comments.
fn parse_line(line: &str) -> Result<Option<(String, String)>, LineError> {
    let body = line.trim_end();
    let indent = body.len() - body.trim_start().len();
    let text = body.trim_start();
    if text.is_empty() {
        return Ok(None);
    }
    if text.starts_with('#') {
        return Ok(not_set_symbol(text).map(|s| (s.to_string(), "n".to_string())));
    }
    let Some(rest) = text.strip_prefix("CONFIG_") else {
        return Err(LineError {
            offset: indent,
            len: text.len(),
            reason: format!(
                "expected `CONFIG_NAME=value` or `# CONFIG_NAME is not set`, found `{text}`"
            ),
            label: "not a Kconfig symbol".into(),
        });
    };
    let name_start = indent + "CONFIG_".len();
    let name_len = rest.find(|c| !is_symbol_char(c)).unwrap_or(rest.len());
    let symbol = &rest[..name_len];
    if symbol.is_empty() {
        return Err(LineError {
            offset: name_start,
            len: 1,
            reason: "expected a symbol name after `CONFIG_`".into(),
            label: "symbol name expected here".into(),
        });
    }
    let after = &rest[name_len..];
    let eq = name_start + name_len;
    let Some(value) = after.strip_prefix('=') else {
        let found = after.chars().next().unwrap_or(' ');
        return Err(LineError {
            offset: eq,
            len: if after.is_empty() {
                0
            } else {
                found.len_utf8()
            },
            reason: if after.is_empty() {
                format!(
                    "expected `=` and a value after `CONFIG_{symbol}`, found the end of the line"
                )
            } else {
                format!("expected `=` right after `CONFIG_{symbol}`, found `{found}`")
            },
            label: "`=` expected here".into(),
        });
    };
    let value_start = eq + 1;
    if value.is_empty() {
        return Err(LineError {
            offset: value_start,
            len: 0,
            reason: format!(
                "expected a value after `CONFIG_{symbol}=` (y, m, n, a number, 0x-hex or a \
                 \"quoted string\"), found the end of the line"
            ),
            label: "value expected here".into(),
        });
    }
    if value.starts_with('"') {
        return match quoted_len(value) {
            None => Err(LineError {
                offset: value_start,
                len: value.len(),
                reason: format!("unterminated string for `CONFIG_{symbol}`: no closing `\"`"),
                label: "this string is never closed".into(),
            }),
            Some(n) if n != value.len() => Err(LineError {
                offset: value_start + n,
                len: value.len() - n,
                reason: format!(
                    "unexpected text after the string for `CONFIG_{symbol}`: `{}`",
                    &value[n..]
                ),
                label: "nothing may follow the closing quote".into(),
            }),
            Some(_) => Ok(Some((symbol.to_string(), value.to_string()))),
        };
    }
    if !valid_value(value) {
        return Err(LineError {
            offset: value_start,
            len: value.len(),
            reason: format!(
                "expected y, m, n, a number, 0x-hex or a \"quoted string\" for `CONFIG_{symbol}`, \
                 found `{value}`"
            ),
            label: "not a Kconfig value".into(),
        });
    }
    Ok(Some((symbol.to_string(), value.to_string())))
}

impl Miniconfig {
    /// Parses miniconfig files in order into one miniconfig; an entry in a
    /// later file (or later in the same file) replaces an earlier entry for
    /// the same symbol, keeping the place where the symbol first appeared.
    pub fn parse_files(paths: &[Utf8PathBuf]) -> Result<Self, KconfigError> {
        let mut mini = Miniconfig::default();
        for path in paths {
            let text = std::fs::read_to_string(path).map_err(|source| KconfigError::Read {
                path: path.clone(),
                source,
            })?;
            mini.merge(Miniconfig::parse_str(&text, path)?);
        }
        Ok(mini)
    }

    /// Parses the text of one miniconfig file named `file` (used in entries
    /// and errors). A malformed line is an error naming file, line and column.
    pub fn parse_str(text: &str, file: &Utf8Path) -> Result<Self, KconfigError> {
        let mut mini = Miniconfig::default();
        let mut line_start = 0;
        for (index, line) in text.split_inclusive('\n').enumerate() {
            let content = line.strip_suffix('\n').unwrap_or(line);
            let content = content.strip_suffix('\r').unwrap_or(content);
            match parse_line(content) {
                Ok(None) => {}
                Ok(Some((symbol, value))) => mini.set(Entry {
                    symbol,
                    value,
                    file: file.to_owned(),
                    line: index + 1,
                }),
                Err(e) => {
                    let column = content[..e.offset].chars().count() + 1;
                    return Err(KconfigError::Malformed(Box::new(MalformedLine {
                        file: file.to_owned(),
                        line: index + 1,
                        column,
                        reason: e.reason,
                        source_code: NamedSource::new(file.as_str(), text.to_string()),
                        span: (line_start + e.offset, e.len).into(),
                        label: e.label,
                    })));
                }
            }
            line_start += line.len();
        }
        Ok(mini)
    }

    /// Adds an entry, replacing any earlier entry for the same symbol.
    pub fn set(&mut self, entry: Entry) {
        match self.entries.iter_mut().find(|e| e.symbol == entry.symbol) {
            Some(old) => *old = entry,
            None => self.entries.push(entry),
        }
    }

    /// Applies every entry of `later` on top of this miniconfig.
    pub fn merge(&mut self, later: Miniconfig) {
        for entry in later.entries {
            self.set(entry);
        }
    }

    /// The entry for `symbol` (without `CONFIG_`), if any.
    pub fn get(&self, symbol: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.symbol == symbol)
    }

    /// The text to pass as `KCONFIG_ALLCONFIG`: one line per entry, in
    /// order, `# CONFIG_X is not set` for `n`. Parsing it gives back the same
    /// symbols and values.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for e in &self.entries {
            s.push_str(&render_line(&e.symbol, &e.value));
            s.push('\n');
        }
        s
    }
}

/// A full `.config` as Kconfig wrote it: symbol → value, `n` for
/// `# CONFIG_X is not set`. Two `DotConfig`s are equal when they map the
/// same symbols to the same values (order and comments do not matter).
#[derive(Debug, Clone, Default)]
pub struct DotConfig {
    file: Utf8PathBuf,
    /// (symbol, value, 1-based line) in file order.
    symbols: Vec<(String, String, usize)>,
    index: HashMap<String, usize>,
}

impl PartialEq for DotConfig {
    fn eq(&self, other: &Self) -> bool {
        self.symbols.len() == other.symbols.len()
            && self
                .symbols
                .iter()
                .all(|(s, v, _)| other.get(s) == Some(v.as_str()))
    }
}

impl Eq for DotConfig {}

impl DotConfig {
    /// Reads a `.config`; only an unreadable file is an error (see
    /// [`DotConfig::parse_str`]).
    pub fn parse_file(p: &Utf8Path) -> Result<Self, KconfigError> {
        let text = std::fs::read_to_string(p).map_err(|source| KconfigError::Read {
            path: p.to_owned(),
            source,
        })?;
        let mut cfg = Self::parse_str(&text);
        cfg.file = p.to_owned();
        Ok(cfg)
    }

    /// Parses `.config` text. Lines that are neither an assignment nor
    /// `# CONFIG_X is not set` are skipped: Kconfig wrote this file, its
    /// comments (menu titles, the date) carry no values. A symbol assigned
    /// twice keeps the later value, as Kconfig would.
    pub fn parse_str(s: &str) -> Self {
        let mut cfg = DotConfig {
            file: Utf8PathBuf::from(".config"),
            ..Default::default()
        };
        for (i, line) in s.lines().enumerate() {
            if let Ok(Some((symbol, value))) = parse_line(line) {
                cfg.insert(symbol, value, i + 1);
            }
        }
        cfg
    }

    fn insert(&mut self, symbol: String, value: String, line: usize) {
        match self.index.get(&symbol) {
            Some(&i) => self.symbols[i] = (symbol, value, line),
            None => {
                self.index.insert(symbol.clone(), self.symbols.len());
                self.symbols.push((symbol, value, line));
            }
        }
    }

    /// The value of `sym` (without `CONFIG_`), `Some("n")` for
    /// `# CONFIG_X is not set`, `None` when the symbol is not in the file.
    pub fn get(&self, sym: &str) -> Option<&str> {
        self.index.get(sym).map(|&i| self.symbols[i].1.as_str())
    }

    /// (symbol, value) in the order of the file.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.symbols
            .iter()
            .map(|(s, v, _)| (s.as_str(), v.as_str()))
    }

    /// How many symbols the file assigns (including `is not set` ones).
    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// The file this was read from (`.config` for [`DotConfig::parse_str`]).
    pub fn file(&self) -> &Utf8Path {
        &self.file
    }

    /// Every symbol whose value differs, `self` being the expected side;
    /// a symbol absent from one side is `None` there. In `self`'s order, then
    /// `other`'s extra symbols in its order.
    pub fn differences(&self, other: &DotConfig) -> Vec<Difference> {
        let mut out = Vec::new();
        for (s, v, _) in &self.symbols {
            let found = other.get(s);
            if found != Some(v.as_str()) {
                out.push(Difference {
                    symbol: s.clone(),
                    expected: Some(v.clone()),
                    found: found.map(str::to_string),
                });
            }
        }
        for (s, v, _) in &other.symbols {
            if !self.index.contains_key(s) {
                out.push(Difference {
                    symbol: s.clone(),
                    expected: None,
                    found: Some(v.clone()),
                });
            }
        }
        out
    }

    fn entry(&self, i: usize) -> Entry {
        let (symbol, value, line) = &self.symbols[i];
        Entry {
            symbol: symbol.clone(),
            value: value.clone(),
            file: self.file.clone(),
            line: *line,
        }
    }
}

/// Requested symbols that did not survive expansion: their value in `cfg`
/// differs from the requested one (a symbol absent from `cfg` counts as
/// `n`). Each comes with the value found, `"n"` when absent. In miniconfig
/// order.
pub fn missing<'a>(mini: &'a Miniconfig, cfg: &DotConfig) -> Vec<(&'a Entry, String)> {
    mini.entries
        .iter()
        .filter_map(|e| {
            let found = cfg.get(&e.symbol).unwrap_or("n");
            (found != e.value).then(|| (e, found.to_string()))
        })
        .collect()
}

/// Fails with [`KconfigError::Missing`], listing every requested symbol
/// that did not survive, unless all of them did.
pub fn check_expanded(mini: &Miniconfig, cfg: &DotConfig) -> Result<(), KconfigError> {
    let missing: Vec<MissingSymbol> = missing(mini, cfg)
        .into_iter()
        .map(|(e, _)| MissingSymbol {
            entry: e.clone(),
            found: cfg.get(&e.symbol).map(str::to_string),
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(KconfigError::Missing { missing })
    }
}

/// Expands `mini` and checks that every requested symbol survived: the
/// returned `.config` holds each entry's value.
pub fn expand(
    mini: &Miniconfig,
    expand: &mut dyn FnMut(&Miniconfig) -> Result<DotConfig, KconfigError>,
) -> Result<DotConfig, KconfigError> {
    let cfg = expand(mini)?;
    check_expanded(mini, &cfg)?;
    Ok(cfg)
}

fn is_bool_on(value: &str) -> bool {
    matches!(value, "y" | "m")
}

/// Shrinks a full `.config` to a miniconfig that expands back to exactly
/// the same symbol → value map; the returned miniconfig has been expanded
/// and compared, so that holds whatever Kconfig did. Its entries point at
/// the lines of `full` they came from, in `full`'s order.
///
/// `expand` turns a miniconfig into the `.config` that
/// `make allnoconfig KCONFIG_ALLCONFIG=<it>` gives (see [`make_expander`]).
///
/// How: the candidates are the symbols whose value differs from a plain
/// allnoconfig (the expansion of an empty miniconfig); if they alone do not
/// reproduce `full`, that is [`KconfigError::Unreproducible`], naming what
/// differs. A candidate is redundant when Kconfig derives its value from the
/// others (`select`, no prompt, a default that follows other symbols).
/// Probes find those without one expansion per symbol: one expansion leaves
/// out every number and string (do their defaults give the same value?),
/// then booleans are probed half at a time, asking `n` for each `y`/`m` of
/// the half (and nothing for each `n`) while keeping the rest: those that
/// come out as in `full` anyway are forced. The halves follow the bits of
/// each boolean's position, so any two land apart at least once: about
/// 2·log2(booleans) expansions. What the probes found is then removed with
/// a delta-debugging search (remove it all; on failure split in two and
/// retry each half), which verifies every removal against `full`. busybox's
/// defconfig (895 candidates) takes 24 expansions.
///
/// Every symbol removed was verified to be unnecessary. A kept symbol was
/// seen to change when not asked for, so the result is small, but a symbol
/// forced only through a chain the probes always broke may be kept.
pub fn shrink(
    full: &DotConfig,
    expand: &mut dyn FnMut(&Miniconfig) -> Result<DotConfig, KconfigError>,
) -> Result<Miniconfig, KconfigError> {
    shrink_over(full, &Miniconfig::default(), expand)
}

/// [`shrink`] for an overlay: `expand` applies `given` (the miniconfigs
/// that come before, say targets/base-linux.config) under the result, so a
/// symbol `given` already asks for with the value `full` has is never a
/// candidate. (Probing it would ask its opposite in the overlay, which
/// wins over `given`, and it would always look needed, whenever `given`'s
/// line alone does not survive without the overlay.)
pub fn shrink_over(
    full: &DotConfig,
    given: &Miniconfig,
    expand: &mut dyn FnMut(&Miniconfig) -> Result<DotConfig, KconfigError>,
) -> Result<Miniconfig, KconfigError> {
    let asked: HashMap<&str, &str> = given
        .entries
        .iter()
        .map(|e| (e.symbol.as_str(), e.value.as_str()))
        .collect();
    let baseline = expand(&Miniconfig::default())?;
    let candidates: Vec<usize> = (0..full.symbols.len())
        .filter(|&i| {
            let (s, v, _) = &full.symbols[i];
            baseline.get(s).unwrap_or("n") != v && asked.get(s.as_str()) != Some(&v.as_str())
        })
        .collect();

    let build = |keep: &[usize], probe: &HashSet<usize>| -> Miniconfig {
        let mut mini = Miniconfig::default();
        for &i in keep {
            let mut entry = full.entry(i);
            if probe.contains(&i) {
                if !is_bool_on(&entry.value) {
                    continue;
                }
                entry.value = "n".into();
            }
            mini.entries.push(entry);
        }
        mini
    };

    let no_probe = HashSet::new();
    let all = expand(&build(&candidates, &no_probe))?;
    if &all != full {
        return Err(KconfigError::Unreproducible {
            candidates: candidates.len(),
            differences: full.differences(&all),
        });
    }

    // Values (numbers, strings) Kconfig may derive from defaults: leave
    // them all out at once, with every boolean as wanted.
    let mut forced: BTreeSet<usize> = BTreeSet::new();
    let (switches, values): (Vec<usize>, Vec<usize>) = candidates
        .iter()
        .partition(|&&i| matches!(full.symbols[i].1.as_str(), "y" | "m" | "n"));
    let mut probe_and_record =
        |probe: HashSet<usize>, forced: &mut BTreeSet<usize>| -> Result<(), KconfigError> {
            if probe.is_empty() {
                return Ok(());
            }
            let got = expand(&build(&candidates, &probe))?;
            for &i in &probe {
                let (s, v, _) = &full.symbols[i];
                if got.get(s).unwrap_or("n") == v {
                    forced.insert(i);
                }
            }
            Ok(())
        };
    probe_and_record(values.iter().copied().collect(), &mut forced)?;

    // Booleans: ask for the opposite of half of them (nothing for an `n`)
    // and see which come out as wanted anyway. Halves follow the bits of
    // each one's position, so any two land apart at least once.
    let bits = usize::BITS - switches.len().saturating_sub(1).leading_zeros();
    for bit in 0..bits.max(1) {
        for side in 0..2 {
            let probe: HashSet<usize> = switches
                .iter()
                .enumerate()
                .filter(|&(pos, i)| (pos >> bit) & 1 == side && !forced.contains(i))
                .map(|(_, &i)| i)
                .collect();
            probe_and_record(probe, &mut forced)?;
        }
    }

    // Remove what the probes found, verifying each removal.
    let mut keep = candidates;
    let forced: Vec<usize> = forced.into_iter().collect();
    remove_chunks(full, &mut keep, &forced, &build, expand)?;
    let mini = build(&keep, &no_probe);
    Ok(mini)
}

/// Delta-debugging removal: try to drop all of `chunk` from `keep`; when the
/// expansion then differs from `full`, split `chunk` in two and retry each
/// half. `keep` only ever loses symbols whose removal was verified.
fn remove_chunks(
    full: &DotConfig,
    keep: &mut Vec<usize>,
    chunk: &[usize],
    build: &dyn Fn(&[usize], &HashSet<usize>) -> Miniconfig,
    expand: &mut dyn FnMut(&Miniconfig) -> Result<DotConfig, KconfigError>,
) -> Result<(), KconfigError> {
    if chunk.is_empty() {
        return Ok(());
    }
    let drop: HashSet<usize> = chunk.iter().copied().collect();
    let trial: Vec<usize> = keep.iter().copied().filter(|i| !drop.contains(i)).collect();
    if &expand(&build(&trial, &HashSet::new()))? == full {
        *keep = trial;
        return Ok(());
    }
    if chunk.len() == 1 {
        return Ok(());
    }
    let (a, b) = chunk.split_at(chunk.len() / 2);
    remove_chunks(full, keep, a, build, expand)?;
    remove_chunks(full, keep, b, build, expand)
}

/// How a source tree's `make` turns a miniconfig into a `.config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpandMethod {
    /// `make allnoconfig KCONFIG_ALLCONFIG=<file>`: Linux.
    Allnoconfig,
    /// `make defconfig KBUILD_DEFCONFIG=<file>`, where the file is the
    /// miniconfig plus `# CONFIG_X is not set` for every other boolean symbol
    /// the tree has shown so far, repeated until no new symbol turns up:
    /// the same result as allnoconfig. For busybox, whose `conf` resets
    /// every boolean to `n` in allnoconfig even when KCONFIG_ALLCONFIG
    /// asks for `y` (busybox 1.35 does), so its allnoconfig cannot expand a
    /// miniconfig.
    DefconfigAllno,
}

impl ExpandMethod {
    /// Busybox trees have a top-level `Config.in` and `applets/`; anything
    /// else (Linux, toybox, whose older `conf` honours KCONFIG_ALLCONFIG)
    /// expands with allnoconfig.
    pub fn detect(src: &Utf8Path) -> ExpandMethod {
        if src.join("Config.in").is_file() && src.join("applets").is_dir() {
            ExpandMethod::DefconfigAllno
        } else {
            ExpandMethod::Allnoconfig
        }
    }
}

/// Name of the miniconfig file the expander writes into `out`.
pub const ALLCONFIG_FILE: &str = ".miniconfig-allconfig";

/// [`make_expander_with`] with the method [`ExpandMethod::detect`] picks.
pub fn make_expander<R>(
    src: &Utf8Path,
    out: crate::confine::Root,
    make_args: Vec<String>,
    run: R,
) -> impl FnMut(&Miniconfig) -> Result<DotConfig, KconfigError> + use<R>
where
    R: FnMut(&[String], &Utf8Path) -> Result<(), String>,
{
    make_expander_with(ExpandMethod::detect(src), src, out, make_args, run)
}

/// An expander for [`shrink`] and [`expand`] that runs the tree's own
/// Kconfig: `make -C SRC [O=OUT] MAKE_ARGS... allnoconfig
/// KCONFIG_ALLCONFIG=OUT/.miniconfig-allconfig` (or the defconfig form, see
/// [`ExpandMethod`]) through `run(argv, cwd)` with `cwd` = `src`, then reads
/// `OUT/.config`. `O=` is left out when `out` is `src`. A stale `.config`
/// is deleted first, so what is read is always this run's. `src` should
/// be absolute: `make -C` changes directory. `out` is the output directory
/// opened as a root: what this process writes, removes and reads there
/// (it runs outside any sandbox) never follows a link out of it.
pub fn make_expander_with<R>(
    method: ExpandMethod,
    src: &Utf8Path,
    out_dir: crate::confine::Root,
    make_args: Vec<String>,
    mut run: R,
) -> impl FnMut(&Miniconfig) -> Result<DotConfig, KconfigError> + use<R>
where
    R: FnMut(&[String], &Utf8Path) -> Result<(), String>,
{
    let src = src.to_owned();
    let out = out_dir.real().to_owned();
    // Boolean symbols seen in any expansion so far (DefconfigAllno).
    let mut known: BTreeSet<String> = BTreeSet::new();
    move |mini: &Miniconfig| {
        let allconfig = out.join(ALLCONFIG_FILE);
        let dot_config = out.join(".config");
        let mut argv = vec!["make".to_string(), "-C".to_string(), src.to_string()];
        let same = std::fs::canonicalize(&src).is_ok_and(|s| s == out.as_std_path());
        if out != src && !same {
            argv.push(format!("O={out}"));
        }
        argv.extend(make_args.iter().cloned());
        match method {
            ExpandMethod::Allnoconfig => {
                argv.push("allnoconfig".into());
                argv.push(format!("KCONFIG_ALLCONFIG={allconfig}"));
            }
            ExpandMethod::DefconfigAllno => {
                argv.push("defconfig".into());
                argv.push(format!("KBUILD_DEFCONFIG={allconfig}"));
            }
        }
        let command = argv.join(" ");
        let mut rounds = 0;
        loop {
            rounds += 1;
            let mut text = mini.render();
            if method == ExpandMethod::DefconfigAllno {
                for sym in &known {
                    if mini.get(sym).is_none() {
                        text.push_str(&render_line(sym, "n"));
                        text.push('\n');
                    }
                }
            }
            out_dir
                .write_atomic(Utf8Path::new(ALLCONFIG_FILE), text.as_bytes(), 0o644)
                .map_err(|source| KconfigError::Write {
                    path: allconfig.clone(),
                    source,
                })?;
            out_dir
                .remove_all(Utf8Path::new(".config"), None)
                .map_err(|source| KconfigError::Write {
                    path: dot_config.clone(),
                    source,
                })?;
            run(&argv, &src).map_err(|message| KconfigError::Expand {
                command: command.clone(),
                message,
            })?;
            let text = out_dir
                .read_to_string(Utf8Path::new(".config"))
                .map_err(|source| KconfigError::Read {
                    path: dot_config.clone(),
                    source,
                })?;
            let cfg = DotConfig::parse_str(&text);
            if method == ExpandMethod::Allnoconfig {
                return Ok(cfg);
            }
            // Symbols this round revealed that are on only because nobody
            // said `n` to them yet: ask again with them listed.
            let mut unseen_on = Vec::new();
            for (sym, value) in cfg.iter() {
                let is_bool = matches!(value, "y" | "m" | "n");
                if is_bool
                    && known.insert(sym.to_string())
                    && is_bool_on(value)
                    && mini.get(sym).is_none()
                {
                    unseen_on.push(sym.to_string());
                }
            }
            if unseen_on.is_empty() {
                return Ok(cfg);
            }
            if rounds >= 20 {
                return Err(KconfigError::Diverged {
                    command,
                    rounds,
                    symbols: unseen_on.join(", "),
                });
            }
        }
    }
}

/// A value `set_symbols` gives a symbol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `y` (true) or "is not set" (false).
    Bool(bool),
    /// `y`, `m` or `n` given as text.
    Tristate(char),
    Int(i64),
    /// A string value, written quoted.
    Text(String),
}

/// Set symbols in a `.config` text: changed in place where they appear
/// (as a value or as "is not set"), appended otherwise.
pub fn set_symbols(text: &str, symbols: &[(String, Value)]) -> String {
    let mut wanted: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in symbols {
        let sym = k.trim_start_matches("CONFIG_").to_string();
        let line = match v {
            Value::Bool(true) | Value::Tristate('y') => format!("CONFIG_{sym}=y"),
            Value::Tristate('m') => format!("CONFIG_{sym}=m"),
            Value::Bool(false) | Value::Tristate(_) => format!("# CONFIG_{sym} is not set"),
            Value::Int(i) => format!("CONFIG_{sym}={i}"),
            Value::Text(s) => format!(
                "CONFIG_{sym}=\"{}\"",
                s.replace('\\', "\\\\").replace('"', "\\\"")
            ),
        };
        wanted.insert(sym, line);
    }
    let mut out = String::with_capacity(text.len() + 64);
    for l in text.lines() {
        let sym = l
            .strip_prefix("CONFIG_")
            .and_then(|r| r.split('=').next())
            .or_else(|| {
                l.strip_prefix("# CONFIG_")
                    .and_then(|r| r.strip_suffix(" is not set"))
            });
        match sym.and_then(|s| wanted.remove(s)) {
            Some(newline) => out.push_str(&newline),
            None => out.push_str(l),
        }
        out.push('\n');
    }
    for (_, l) in wanted {
        out.push_str(&l);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_symbols_changes_in_place_and_appends() {
        let text = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x\"\n";
        let out = set_symbols(
            text,
            &[
                ("A".into(), Value::Bool(false)),
                ("CONFIG_B".into(), Value::Tristate('m')),
                ("C".into(), Value::Text("a\"b".into())),
                ("D".into(), Value::Int(3)),
            ],
        );
        assert_eq!(
            out,
            "# CONFIG_A is not set\nCONFIG_B=m\nCONFIG_C=\"a\\\"b\"\nCONFIG_D=3\n"
        );
    }
}

/// Where a kbuild `make` command runs: the source tree (`-C DIR`, else
/// `cwd`), the output tree (`O=DIR`, else the source tree) and the other
/// arguments, for [`make_expander_with`]. Relative directories are taken
/// from `cwd`.
pub fn split_make_args(cwd: &Utf8Path, args: &[String]) -> (Utf8PathBuf, Utf8PathBuf, Vec<String>) {
    let abs = |d: &str| {
        let p = Utf8PathBuf::from(d);
        if p.is_absolute() { p } else { cwd.join(p) }
    };
    let mut src = cwd.to_owned();
    let mut out = None;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-C" {
            if let Some(d) = it.next() {
                src = abs(d);
            }
        } else if let Some(d) = a.strip_prefix("O=") {
            out = Some(abs(d));
        } else {
            rest.push(a.clone());
        }
    }
    let out = out.unwrap_or_else(|| src.clone());
    (src, out, rest)
}

/// A malformed line of a miniconfig: where, why, and a label for the caret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineProblem {
    /// 1-based line and column.
    pub line: usize,
    pub column: usize,
    pub reason: String,
    pub label: String,
}

/// Every malformed line of a miniconfig text (where `parse_str` stops at
/// the first), for `rhbuild check`.
pub fn malformed_lines(text: &str) -> Vec<LineProblem> {
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let content = line.strip_suffix('\r').unwrap_or(line);
        if let Err(e) = parse_line(content) {
            out.push(LineProblem {
                line: index + 1,
                column: content[..e.offset].chars().count() + 1,
                reason: e.reason,
                label: e.label,
            });
        }
    }
    out
}

/// The symbols a miniconfig text sets, with their 1-based lines and
/// columns (malformed lines are skipped).
pub fn symbols_with_lines(text: &str) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if let Ok(Some((symbol, _))) = parse_line(line.strip_suffix('\r').unwrap_or(line)) {
            let column = line
                .find(&symbol)
                .map_or(1, |i| line[..i].chars().count() + 1);
            out.push((symbol, index + 1, column));
        }
    }
    out
}

/// Every symbol a Kconfig tree declares (`config NAME` or `menuconfig
/// NAME` in any file named `Kconfig*`), for spotting misspelt symbols.
pub fn declared_symbols(tree: &Utf8Path) -> std::io::Result<HashSet<String>> {
    let mut out = HashSet::new();
    let mut todo = vec![tree.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let path = dir.join(&name);
            if kind.is_dir() && !name.starts_with('.') {
                todo.push(path);
            } else if kind.is_file() && name.starts_with("Kconfig") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                for line in text.lines() {
                    let mut words = line.split_whitespace();
                    if let (Some("config" | "menuconfig"), Some(sym)) = (words.next(), words.next())
                    {
                        out.insert(sym.to_string());
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod lint_tests {
    use super::*;

    #[test]
    fn make_arguments_name_the_source_and_output_trees() {
        let args: Vec<String> = ["-C", "/src/linux", "O=obj", "ARCH=sh", "CROSS_COMPILE=sh4-"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (src, out, rest) = split_make_args(Utf8Path::new("/work"), &args);
        assert_eq!(src, "/src/linux");
        assert_eq!(out, "/work/obj");
        assert_eq!(rest, vec!["ARCH=sh", "CROSS_COMPILE=sh4-"]);
        let (src, out, rest) = split_make_args(Utf8Path::new("/w"), &[]);
        assert_eq!((src.as_str(), out.as_str(), rest.len()), ("/w", "/w", 0));
    }

    #[test]
    fn every_malformed_line_is_reported_with_its_place() {
        let text = "CONFIG_A=y\nCONFIG_MMU=yes\ngarbage here\n# comment\nCONFIG_B=\"x\"\n";
        let p = malformed_lines(text);
        assert_eq!(p.iter().map(|p| p.line).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(p[1].column, 1);
        let syms = symbols_with_lines(text);
        assert_eq!(syms[0], ("A".to_string(), 1, 8));
        assert_eq!(syms.last().unwrap().0, "B");
    }
}
