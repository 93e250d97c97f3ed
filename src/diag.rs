//! Script diagnostics: every syntax error, runtime error and failing
//! primitive becomes one `ScriptDiagnostic` that names the script file (not
//! the import alias), line and column, shows the source line and says what
//! to do.

use camino::{Utf8Path, Utf8PathBuf};
use miette::{Diagnostic, NamedSource, SourceSpan};
use rhai::{EvalAltResult, ParseError, Position};

/// One error located in a script.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ScriptDiagnostic {
    pub message: String,
    pub file: Utf8PathBuf,
    pub line: usize,
    pub column: usize,
    src: NamedSource<String>,
    span: SourceSpan,
    label: String,
    help: Option<String>,
}

impl Diagnostic for ScriptDiagnostic {
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.src)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        Some(Box::new(std::iter::once(
            miette::LabeledSpan::new_with_span(Some(self.label.clone()), self.span),
        )))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
}

impl ScriptDiagnostic {
    /// A diagnostic at `line`:`column` (both 1-based; column counts
    /// characters) of `file`, whose text is `text`. `file` is shown as given,
    /// so pass it relative to the project root.
    pub fn at(
        file: &Utf8Path,
        text: &str,
        line: usize,
        column: usize,
        message: impl Into<String>,
        label: impl Into<String>,
        help: Option<String>,
    ) -> Self {
        let span = span_at(text, line, column);
        ScriptDiagnostic {
            message: message.into(),
            file: file.to_owned(),
            line,
            column,
            src: NamedSource::new(file.as_str(), text.to_string()),
            span,
            label: label.into(),
            help,
        }
    }

    /// `file:line:column`, for one-line listings.
    pub fn location(&self) -> String {
        format!("{}:{}:{}", self.file, self.line, self.column)
    }
}

/// The byte span of the token starting at `line`:`column`: an identifier or
/// number runs to its end, anything else is one character. Out-of-range
/// positions clamp to the end of the text.
fn span_at(text: &str, line: usize, column: usize) -> SourceSpan {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let start = l
                .char_indices()
                .nth(column.saturating_sub(1))
                .map(|(b, _)| b)
                .unwrap_or(l.trim_end_matches('\n').len());
            let rest = &l[start..];
            let word: usize = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .map(char::len_utf8)
                .sum();
            let len = if word > 0 {
                word
            } else {
                rest.chars()
                    .next()
                    .filter(|c| *c != '\n')
                    .map_or(0, char::len_utf8)
            };
            return SourceSpan::new((offset + start).into(), len);
        }
        offset += l.len();
    }
    SourceSpan::new(text.len().into(), 0)
}

/// Where a script's text comes from: the engine resolves a source name
/// (`packages/busybox.rhai`) to its text for rendering.
pub trait SourceLookup {
    fn text_of(&self, file: &Utf8Path) -> Option<String>;
}

/// A syntax error in `file`.
pub fn from_parse_error(file: &Utf8Path, text: &str, err: &ParseError) -> ScriptDiagnostic {
    let pos = err.position();
    let message = format!("syntax error: {}", err.err_type());
    ScriptDiagnostic::at(
        file,
        text,
        pos.line().unwrap_or(1),
        pos.position().unwrap_or(1),
        message,
        "here",
        Some(
            "fix the script; `rhbuild check` reports every script's errors without building".into(),
        ),
    )
}

/// A runtime error raised while running `top` (a script file relative to the
/// project root). Errors inside functions and imported modules are followed
/// to the file and line where they happened; the call chain is kept in the
/// help text.
pub fn from_eval_error(
    top: &Utf8Path,
    err: &EvalAltResult,
    lookup: &dyn SourceLookup,
) -> ScriptDiagnostic {
    let mut file = top.to_owned();
    let mut trail: Vec<String> = Vec::new();
    let mut err = err;
    loop {
        match err {
            EvalAltResult::ErrorInFunctionCall(name, source, inner, pos) => {
                if !pos.is_none() {
                    trail.push(format!("in `{name}` called at {}", loc(&file, *pos)));
                }
                if !source.is_empty() {
                    file = source_file(source);
                }
                err = inner;
            }
            EvalAltResult::ErrorInModule(path, inner, pos) => {
                if !pos.is_none() {
                    trail.push(format!(
                        "while loading `{path}` imported at {}",
                        loc(&file, *pos)
                    ));
                }
                file = source_file(path);
                err = inner;
            }
            _ => break,
        }
    }
    let pos = err.position();
    let (message, help) = describe(err);
    let text = lookup.text_of(&file).unwrap_or_default();
    let mut help = help;
    if !trail.is_empty() {
        trail.reverse();
        let chain = trail.join("\n");
        help = Some(match help {
            Some(h) => format!("{h}\n{chain}"),
            None => chain,
        });
    }
    ScriptDiagnostic::at(
        &file,
        &text,
        pos.line().unwrap_or(1),
        pos.position().unwrap_or(1),
        message,
        "here",
        help,
    )
}

fn loc(file: &Utf8Path, pos: Position) -> String {
    format!(
        "{}:{}:{}",
        file,
        pos.line().unwrap_or(0),
        pos.position().unwrap_or(0)
    )
}

/// A source name as Rhai carries it, as a file relative to the project root.
fn source_file(source: &str) -> Utf8PathBuf {
    if source.ends_with(".rhai") {
        Utf8PathBuf::from(source)
    } else {
        Utf8PathBuf::from(format!("{source}.rhai"))
    }
}

/// The message and help text for a leaf error.
fn describe(err: &EvalAltResult) -> (String, Option<String>) {
    match err {
        EvalAltResult::ErrorRuntime(value, _) => (value.to_string(), None),
        EvalAltResult::ErrorFunctionNotFound(sig, _) => (
            format!("unknown function `{sig}`"),
            Some("check the name and the argument types against docs/primitives.md; `rhbuild check` lists every unknown function".into()),
        ),
        EvalAltResult::ErrorVariableNotFound(name, _) => (
            format!("unknown variable `{name}`"),
            Some("declare it with `let` or `const` before use; functions cannot see the script's variables, pass them as arguments".into()),
        ),
        EvalAltResult::ErrorModuleNotFound(name, _) => (
            format!("no module `{name}`"),
            Some("imports name a file relative to the project root without `.rhai`, for example `import \"stdlib/autotools\" as autotools;`".into()),
        ),
        EvalAltResult::ErrorPropertyNotFound(name, _) => (
            format!("no property `{name}` in this map"),
            Some("use `map.get(\"key\")` or `\"key\" in map` for optional keys".into()),
        ),
        EvalAltResult::ErrorTooManyOperations(_) => (
            "the script ran too many operations".into(),
            Some("scripts describe builds; loops that run millions of times belong in a primitive".into()),
        ),
        other => {
            let s = other.to_string();
            let s = match s.rfind(" (line ") {
                Some(i) => s[..i].to_string(),
                None => s,
            };
            (s, None)
        }
    }
}

/// Render a diagnostic as plain text (no colours), as the CLI prints it when
/// stderr is not a terminal and as tests assert it.
pub fn render_plain(diag: &dyn Diagnostic) -> String {
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .with_width(200);
    let mut out = String::new();
    let _ = handler.render_report(&mut out, diag);
    out
}

/// Render for the terminal: colours when stderr is one and NO_COLOR is unset.
pub fn render(diag: &dyn Diagnostic) -> String {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
        let handler = miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode())
            .with_width(200);
        let mut out = String::new();
        let _ = handler.render_report(&mut out, diag);
        out
    } else {
        render_plain(diag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_covers_the_identifier() {
        let text = "let a = 1;\nfoo(bar);\n";
        let s = span_at(text, 2, 5);
        assert_eq!(&text[s.offset()..s.offset() + s.len()], "bar");
        let s = span_at(text, 2, 4);
        assert_eq!(&text[s.offset()..s.offset() + s.len()], "(");
    }

    #[test]
    fn rendering_shows_file_line_and_caret() {
        let d = ScriptDiagnostic::at(
            Utf8Path::new("scripts/x.rhai"),
            "let a = 1;\nfrob(a);\n",
            2,
            1,
            "unknown function `frob`",
            "here",
            None,
        );
        let r = render_plain(&d);
        assert!(r.contains("unknown function `frob`"), "{r}");
        assert!(r.contains("scripts/x.rhai:2:1"), "{r}");
        assert!(r.contains("frob(a);"), "{r}");
    }
}
