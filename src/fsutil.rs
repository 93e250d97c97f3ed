//! Small file helpers several primitives share: the tail of a log (what a
//! failure shows) and publishing a finished file under its final name.

use camino::Utf8Path;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

/// The last `lines` lines of a text file (read from its end, so a huge log
/// costs little).
pub fn tail_of_file(path: &Utf8Path, lines: usize) -> io::Result<String> {
    const WINDOW: u64 = 64 * 1024;
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(WINDOW);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(last_lines(&text, lines))
}

/// The last `n` lines of `text`, without a trailing newline.
pub fn last_lines(text: &str, n: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(n)..].join("\n")
}

/// Put the finished file `part` at `dest` (a rename: `dest` is never
/// seen half-written); `part` is removed when that fails.
pub fn publish(part: &Utf8Path, dest: &Utf8Path) -> io::Result<()> {
    std::fs::rename(part, dest).inspect_err(|_| {
        let _ = std::fs::remove_file(part);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_takes_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a\n", 5), "a");
        assert_eq!(last_lines("", 5), "");
    }
}
