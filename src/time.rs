//! Calendar time in UTC without a date crate: formatting milliseconds since the epoch as
//! RFC 3339, and reading the times operators type (`--since`) back.
//!
//! The conversions are Howard Hinnant's `days_from_civil` and `civil_from_days`
//! (<https://howardhinnant.github.io/date_algorithms.html>): days are shifted to an era starting
//! on 0000-03-01, so the leap day ends each 400-year era's years and every month but February has
//! a fixed place. Times before 1970 are not needed here and are clamped to 1970.

/// Milliseconds in a day.
const DAY_MS: u64 = 86_400_000;
/// A bare number at least this large is milliseconds (2001-09-09 in ms; year 33658 in seconds).
const MS_THRESHOLD: u64 = 1_000_000_000_000;

/// Now, in milliseconds since the Unix epoch (0 for a clock set before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The proleptic Gregorian date of a day counted from 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097); // [0, 146096]
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // from March 1
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The day, counted from 1970-01-01, of a proleptic Gregorian date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = i64::from(if month > 2 { month - 3 } else { month + 9 });
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `2026-11-28T08:18:05.123Z`.
pub fn rfc3339_ms(ms: u64) -> String {
    let (year, month, day) = civil_from_days((ms / DAY_MS) as i64);
    let of_day = ms % DAY_MS;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3_600_000,
        of_day / 60_000 % 60,
        of_day / 1000 % 60,
        of_day % 1000
    )
}

/// Reads a time as milliseconds since the epoch: RFC 3339 in UTC (`2026-11-28T08:00:00Z`, with
/// optional fraction, or a date alone for its midnight), a Unix time in seconds or (13+ digits)
/// milliseconds, or an age before `now_ms` (`90s`, `15m`, `2h`, `7d`).
pub fn parse_time(text: &str, now_ms: u64) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a time (2026-11-28T08:00:00Z, a Unix time, or an age like 2h)");
    let text = text.trim();
    if let Some(unit) = text.chars().last().filter(|c| "smhd".contains(*c)) {
        let count: u64 = text[..text.len() - 1].parse().map_err(|_| bad())?;
        let unit_ms = match unit {
            's' => 1000,
            'm' => 60_000,
            'h' => 3_600_000,
            _ => DAY_MS,
        };
        return Ok(now_ms.saturating_sub(count.saturating_mul(unit_ms)));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty() {
        let n: u64 = text.parse().map_err(|_| bad())?;
        return Ok(if n >= MS_THRESHOLD { n } else { n.saturating_mul(1000) });
    }
    let (date, clock) = text.split_once(['T', ' ']).unwrap_or((text, "00:00:00Z"));
    let mut parts = date.splitn(3, '-').map(|p| p.parse::<u32>().map_err(|_| bad()));
    let (year, month, day) = match (parts.next(), parts.next(), parts.next()) {
        (Some(y), Some(m), Some(d)) => (y?, m?, d?),
        _ => return Err(bad()),
    };
    let clock = clock
        .strip_suffix(['Z', 'z'])
        .ok_or_else(|| format!("{text:?}: give the time in UTC (end it with Z)"))?;
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut hms = hms.splitn(3, ':').map(|p| p.parse::<u64>().map_err(|_| bad()));
    let (hour, minute, second) = match (hms.next(), hms.next(), hms.next()) {
        (Some(h), Some(m), Some(s)) => (h?, m?, s?),
        _ => return Err(bad()),
    };
    let valid =
        (1..=12).contains(&month) && (1..=31).contains(&day) && hour < 24 && minute < 60 && second < 61;
    if !valid || year < 1970 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let millis: u64 = format!("{fraction:0<3}")[..3].parse().unwrap_or(0);
    let days = days_from_civil(i64::from(year), month, day) as u64;
    Ok(days * DAY_MS + (hour * 3600 + minute * 60 + second) * 1000 + millis)
}

/// `YYYYMMDDTHHMMSS.mmmZ` in UTC (times before 1970 are written as 1970).
pub fn file_stamp(time: std::time::SystemTime) -> String {
    let since_epoch = time.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let of_day = secs % 86_400;
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}.{:03}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        since_epoch.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_of_known_days_both_ways() {
        let table = [
            (0, (1970, 1, 1)),
            (-1, (1969, 12, 31)),
            (59, (1970, 3, 1)),
            (11_016, (2000, 2, 29)),
            (20_055, (2024, 11, 28)),
            (47_540, (2100, 2, 28)),
            (47_541, (2100, 3, 1)),
            (2_932_896, (9999, 12, 31)),
        ];
        for (days, (y, m, d)) in table {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn times_format_and_parse_back() {
        for ms in [0, 951_782_400_000, 1_732_780_800_123, 1_795_853_885_123, 4_107_542_399_999] {
            let text = rfc3339_ms(ms);
            assert_eq!(parse_time(&text, 0), Ok(ms), "{text}");
        }
        assert_eq!(rfc3339_ms(1_795_853_885_123), "2026-11-28T08:18:05.123Z");
        let now = 1_795_853_885_123;
        for (text, expected) in [
            ("2026-11-28", 1_795_824_000_000),
            ("2026-11-28T08:18:05Z", 1_795_853_885_000),
            ("2026-11-28 08:18:05.1Z", 1_795_853_885_100),
            ("1795853885", 1_795_853_885_000),
            ("1795853885123", 1_795_853_885_123),
            ("90s", now - 90_000),
            ("2h", now - 7_200_000),
            ("7d", now - 7 * DAY_MS),
        ] {
            assert_eq!(parse_time(text, now), Ok(expected), "{text}");
        }
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-11-28T08:00:00+02:00",
            "2026-11-28T25:00:00Z",
            "1.5h",
            "1969-12-31",
        ] {
            assert!(parse_time(bad, now).is_err(), "{bad:?}");
        }
    }
}
