//! Small file helpers several primitives share: the tail of a log (what a
//! failure shows) and publishing a finished file under its final name.

use camino::{Utf8Path, Utf8PathBuf};
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

/// A time in seconds since 1970 as UTC: (year, month, day, hours,
/// minutes, seconds, weekday with 0 for Thursday).
fn civil(epoch: i64) -> (i64, i64, i64, i64, i64, i64, usize) {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    // The civil date of a day number (days since 1970-01-01).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = days.rem_euclid(7) as usize;
    (
        year,
        month,
        day,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        weekday,
    )
}

/// `date -u`'s form of seconds since 1970: `Sun Jan  1 00:00:00 UTC 2023`.
pub fn utc_date(epoch: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (year, month, day, h, m, s, weekday) = civil(epoch);
    format!(
        "{} {} {day:>2} {h:02}:{m:02}:{s:02} UTC {year}",
        DAYS[weekday],
        MONTHS[(month - 1) as usize],
    )
}

/// ISO 8601 in UTC, as SPDX wants it: `2023-01-01T00:00:00Z`.
pub fn iso_date(epoch: i64) -> String {
    let (year, month, day, h, m, s, _) = civil(epoch);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

/// `to` as a path relative to the directory `from` (both absolute; `.` and
/// `..` components are taken as text, so give clean paths): what a build
/// that records its source directory (gcc's `Configured with:`, `__FILE__`
/// in assertions) is told, so the record does not name the build directory.
/// Anything not absolute comes back unchanged.
pub fn relative_path(from: &Utf8Path, to: &Utf8Path) -> Utf8PathBuf {
    if !from.is_absolute() || !to.is_absolute() {
        return to.to_owned();
    }
    let a: Vec<_> = from.components().collect();
    let b: Vec<_> = to.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut rel = Utf8PathBuf::new();
    for _ in common..a.len() {
        rel.push("..");
    }
    for c in &b[common..] {
        rel.push(c.as_str());
    }
    if rel.as_str().is_empty() {
        rel.push(".");
    }
    rel
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_as_date_prints_them() {
        assert_eq!(super::utc_date(0), "Thu Jan  1 00:00:00 UTC 1970");
        assert_eq!(
            super::utc_date(1_672_531_200),
            "Sun Jan  1 00:00:00 UTC 2023"
        );
        assert_eq!(super::utc_date(951_782_400), "Tue Feb 29 00:00:00 UTC 2000");
        assert_eq!(
            super::utc_date(1_796_361_820),
            "Fri Dec  4 05:23:40 UTC 2026"
        );
    }

    use super::*;

    #[test]
    fn last_lines_takes_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a\n", 5), "a");
        assert_eq!(last_lines("", 5), "");
    }

    #[test]
    fn relative_paths_climb_to_the_common_directory() {
        let r = |a: &str, b: &str| relative_path(Utf8Path::new(a), Utf8Path::new(b)).to_string();
        assert_eq!(r("/b/sh4/work/gcc", "/b/src/gcc-12"), "../../../src/gcc-12");
        assert_eq!(r("/b/work", "/b/work/gcc"), "gcc");
        assert_eq!(r("/b/work", "/b/work"), ".");
        assert_eq!(r("/b/work/", "/b/work/x/"), "x");
        assert_eq!(r("/a", "/b"), "../b");
        assert_eq!(r("/", "/usr/bin"), "usr/bin");
        assert_eq!(r("relative", "/x"), "/x");
        assert_eq!(r("/x", "y"), "y");
    }
}
