//! Calendar dates (`YYYY-MM-DD`, proleptic Gregorian, UTC) for rule expiry.

use std::fmt;
use std::time::SystemTime;

/// A calendar date; dates compare in calendar order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

impl Date {
    /// Parses `YYYY-MM-DD`, checking the month's length (leap years included).
    pub fn parse(text: &str) -> Result<Date, String> {
        let invalid = || format!("{text:?} is not a date; use YYYY-MM-DD, such as 2026-06-30");
        let parts: Vec<&str> = text.split('-').collect();
        let [year, month, day] = parts.as_slice() else {
            return Err(invalid());
        };
        let digits = |part: &str, length: usize| {
            part.len() == length && part.bytes().all(|b| b.is_ascii_digit())
        };
        if !(digits(year, 4) && digits(month, 2) && digits(day, 2)) {
            return Err(invalid());
        }
        let date = Date {
            year: year.parse().map_err(|_| invalid())?,
            month: month.parse().map_err(|_| invalid())?,
            day: day.parse().map_err(|_| invalid())?,
        };
        if !(1..=12).contains(&date.month) {
            return Err(format!(
                "{text:?} is not a valid date: the month must be 01 to 12"
            ));
        }
        let length = days_in_month(date.year, date.month);
        if date.day == 0 || date.day > length {
            return Err(format!(
                "{text:?} is not a valid date: that month has days 01 to {length}"
            ));
        }
        Ok(date)
    }

    /// Returns today's date in UTC, from the system clock.
    pub fn today() -> Date {
        // A clock set before 1970 counts as 1970-01-01.
        let seconds = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        Date::from_unix_days(seconds / 86_400)
    }

    /// Returns the date a number of days after 1970-01-01.
    fn from_unix_days(mut days: u64) -> Date {
        let mut year: u16 = 1970;
        loop {
            let length = if is_leap(year) { 366 } else { 365 };
            if days < length {
                break;
            }
            days -= length;
            year += 1;
        }
        let mut month: u8 = 1;
        while days >= u64::from(days_in_month(year, month)) {
            days -= u64::from(days_in_month(year, month));
            month += 1;
        }
        Date {
            year,
            month,
            // Fewer than 31 days are left, so the cast cannot truncate.
            day: days as u8 + 1,
        }
    }
}

fn is_leap(year: u16) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_dates() {
        let first = Date::parse("2025-12-31").expect("valid");
        let second = Date::parse("2026-01-01").expect("valid");
        assert!(first < second);
        assert_eq!(first.to_string(), "2025-12-31");
        assert!(Date::parse("2024-02-29").is_ok());
        assert!(Date::parse("2000-02-29").is_ok());
    }

    #[test]
    fn rejects_malformed_dates() {
        for text in [
            "2025-13-01",
            "2025-02-29",
            "1900-02-29",
            "2025-04-31",
            "2025-00-10",
            "2025-01-00",
            "2025-1-5",
            "25-01-05",
            "2025/01/05",
            "2025-01-05T00:00:00Z",
            "",
            "next year",
        ] {
            assert!(Date::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn counts_days_from_the_epoch() {
        assert_eq!(Date::from_unix_days(0).to_string(), "1970-01-01");
        assert_eq!(Date::from_unix_days(59).to_string(), "1970-03-01");
        // 2000 is a leap year: day 11016 is 2000-02-29.
        assert_eq!(Date::from_unix_days(11_016).to_string(), "2000-02-29");
        assert_eq!(Date::from_unix_days(11_017).to_string(), "2000-03-01");
        assert_eq!(Date::from_unix_days(20_453).to_string(), "2025-12-31");
    }

    #[test]
    fn today_is_after_this_code_was_written() {
        assert!(Date::today() > Date::parse("2025-01-01").expect("valid"));
    }
}
