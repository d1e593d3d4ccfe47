//! A policy's runtime `conditions`: where the request comes from and when it is made.
//!
//! The wire contract leaves `conditions` an open object; keyward reads two keys and rejects
//! any other, so a misspelled condition can never silently widen a policy:
//!
//! ```json
//! {
//!   "ip_allowlist": ["10.0.0.0/8", "203.0.113.7", "2001:db8::/32"],
//!   "time_window": {"days": ["mon", "tue"], "start": "09:00", "end": "17:00", "timezone": "Europe/Berlin"}
//! }
//! ```
//!
//! - `ip_allowlist`: CIDRs or bare addresses (a bare address is a /32 or /128). Absent or empty
//!   means any address.
//! - `time_window`: `start`/`end` as `"HH:MM"` (`"HH:MM:SS"` also read) in `timezone` (an IANA
//!   name, default `UTC`). 1claw's spelling `after`/`before` is read as `start`/`end`. The window
//!   is half-open, `[start, end)`. If `end` is not after `start` the window runs past midnight
//!   into the next day (`22:00`–`06:00`; `00:00`–`00:00` is a whole day). `days` (`mon`..`sun`
//!   or `monday`..`sunday`, any case) names the local day on which a window *starts*; empty or
//!   absent means every day. Local time is derived from the UTC instant, which is never
//!   ambiguous, also across daylight-saving changes.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use chrono::{DateTime, NaiveTime, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use ipnet::IpNet;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The conditions of one policy; the default has none and admits every request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "serialize_ip_allowlist",
        deserialize_with = "deserialize_ip_allowlist"
    )]
    pub ip_allowlist: Vec<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_window: Option<TimeWindow>,
}

/// A recurring window of local time, see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TimeWindowWire", into = "TimeWindowWire")]
pub struct TimeWindow {
    /// Days on which the window starts; empty means every day.
    pub days: Vec<Weekday>,
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub timezone: Tz,
}

/// Why a condition does not admit a request. The texts are shown to the vault owner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionFailure {
    #[error("client IP {ip} is not in the ip_allowlist [{}]", join(.allowlist))]
    IpNotAllowed { ip: IpAddr, allowlist: Vec<IpNet> },
    #[error("request time {} is outside the time window {window}", local_time(.at))]
    OutsideTimeWindow {
        /// The request's instant in the window's time zone.
        at: DateTime<Tz>,
        window: TimeWindow,
    },
}

/// Why a `conditions` object cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionsError {
    #[error("ip_allowlist entry {0:?} is neither an IP address nor a CIDR such as \"10.0.0.0/8\" or \"2001:db8::/32\"")]
    InvalidIpAllowlistEntry(String),
    #[error("time_window day {0:?} is not a day of the week; expected mon..sun or monday..sunday")]
    InvalidDay(String),
    #[error("time_window {field} {value:?} is not a time of day \"HH:MM\" between 00:00 and 23:59")]
    InvalidTime { field: &'static str, value: String },
    #[error("time_window timezone {0:?} is not an IANA time zone name such as \"UTC\" or \"America/New_York\"")]
    InvalidTimezone(String),
}

impl Conditions {
    /// Whether the request passes every condition; the first that fails is the error,
    /// `ip_allowlist` before `time_window`.
    pub fn admits(&self, ip: IpAddr, now: DateTime<Utc>) -> Result<(), ConditionFailure> {
        self.admits_ip(ip)?;
        match &self.time_window {
            Some(window) => window.admits(now),
            None => Ok(()),
        }
    }

    /// The `ip_allowlist` alone. An IPv4-mapped IPv6 client address (`::ffff:10.0.0.7`, as a
    /// dual-stack listener reports IPv4 clients) is also checked as the IPv4 address it maps.
    pub fn admits_ip(&self, ip: IpAddr) -> Result<(), ConditionFailure> {
        let canonical = ip.to_canonical();
        let admitted = self.ip_allowlist.is_empty()
            || self
                .ip_allowlist
                .iter()
                .any(|net| net.contains(&ip) || net.contains(&canonical));
        if admitted {
            Ok(())
        } else {
            Err(ConditionFailure::IpNotAllowed {
                ip,
                allowlist: self.ip_allowlist.clone(),
            })
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ip_allowlist.is_empty() && self.time_window.is_none()
    }
}

/// Reads one `ip_allowlist` entry: a CIDR, or a bare address as a single-host network.
pub fn parse_ip_allowlist_entry(raw: &str) -> Result<IpNet, ConditionsError> {
    raw.parse::<IpNet>()
        .or_else(|_| raw.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| ConditionsError::InvalidIpAllowlistEntry(raw.to_owned()))
}

fn serialize_ip_allowlist<S: Serializer>(allowlist: &[IpNet], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(allowlist.iter().map(ToString::to_string))
}

fn deserialize_ip_allowlist<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    let entries = Option::<Vec<String>>::deserialize(deserializer)?.unwrap_or_default();
    entries
        .iter()
        .map(|entry| parse_ip_allowlist_entry(entry))
        .collect::<Result<_, _>>()
        .map_err(D::Error::custom)
}

impl TimeWindow {
    /// Whether the window runs past midnight into the next day (`end` not after `start`).
    pub fn wraps_midnight(&self) -> bool {
        self.end <= self.start
    }

    /// Whether the instant falls inside the window.
    pub fn contains(&self, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&self.timezone);
        let time = local.time();
        let day = chrono::Datelike::weekday(&local);
        if !self.wraps_midnight() {
            self.start <= time && time < self.end && self.starts_on(day)
        } else if time >= self.start {
            self.starts_on(day)
        } else if time < self.end {
            self.starts_on(day.pred())
        } else {
            false
        }
    }

    pub fn admits(&self, now: DateTime<Utc>) -> Result<(), ConditionFailure> {
        if self.contains(now) {
            Ok(())
        } else {
            Err(ConditionFailure::OutsideTimeWindow {
                at: now.with_timezone(&self.timezone),
                window: self.clone(),
            })
        }
    }

    fn starts_on(&self, day: Weekday) -> bool {
        self.days.is_empty() || self.days.contains(&day)
    }
}

/// `mon,fri 09:00-17:00 Europe/Berlin`, `every day 22:00-06:00 (ending the next day) UTC`.
impl fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.days.is_empty() {
            f.write_str("every day")?;
        } else {
            let days: Vec<&str> = self.days.iter().map(|day| day_name(*day)).collect();
            f.write_str(&days.join(","))?;
        }
        write!(f, " {}-{}", format_time(self.start), format_time(self.end))?;
        if self.wraps_midnight() {
            f.write_str(" (ending the next day)")?;
        }
        write!(f, " {}", self.timezone.name())
    }
}

/// The wire shape of a time window, before validation.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeWindowWire {
    #[serde(default)]
    days: Option<Vec<String>>,
    #[serde(alias = "after")]
    start: String,
    #[serde(alias = "before")]
    end: String,
    #[serde(default)]
    timezone: Option<String>,
}

impl TryFrom<TimeWindowWire> for TimeWindow {
    type Error = ConditionsError;
    fn try_from(wire: TimeWindowWire) -> Result<Self, Self::Error> {
        let days = wire
            .days
            .unwrap_or_default()
            .iter()
            .map(|day| parse_day(day))
            .collect::<Result<_, _>>()?;
        let start = parse_time("start", &wire.start)?;
        let end = parse_time("end", &wire.end)?;
        let timezone = match wire.timezone {
            None => Tz::UTC,
            Some(name) => Tz::from_str(&name).map_err(|_| ConditionsError::InvalidTimezone(name))?,
        };
        Ok(Self {
            days,
            start,
            end,
            timezone,
        })
    }
}

impl From<TimeWindow> for TimeWindowWire {
    fn from(window: TimeWindow) -> Self {
        Self {
            days: Some(window.days.iter().map(|day| day_name(*day).to_owned()).collect()),
            start: format_time(window.start),
            end: format_time(window.end),
            timezone: Some(window.timezone.name().to_owned()),
        }
    }
}

/// `mon`..`sun` or `monday`..`sunday`, any case.
pub fn parse_day(raw: &str) -> Result<Weekday, ConditionsError> {
    let day = match raw.to_ascii_lowercase().as_str() {
        "mon" | "monday" => Weekday::Mon,
        "tue" | "tuesday" => Weekday::Tue,
        "wed" | "wednesday" => Weekday::Wed,
        "thu" | "thursday" => Weekday::Thu,
        "fri" | "friday" => Weekday::Fri,
        "sat" | "saturday" => Weekday::Sat,
        "sun" | "sunday" => Weekday::Sun,
        _ => return Err(ConditionsError::InvalidDay(raw.to_owned())),
    };
    Ok(day)
}

fn day_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

/// Exactly `HH:MM` or `HH:MM:SS`, two digits each.
fn parse_time(field: &'static str, raw: &str) -> Result<NaiveTime, ConditionsError> {
    let invalid = || ConditionsError::InvalidTime {
        field,
        value: raw.to_owned(),
    };
    let two_digits = |part: &str| -> Option<u32> {
        (part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse().ok())
            .flatten()
    };
    let parts: Vec<&str> = raw.split(':').collect();
    let (hour, minute, second) = match parts.as_slice() {
        [hour, minute] => (two_digits(hour), two_digits(minute), Some(0)),
        [hour, minute, second] => (two_digits(hour), two_digits(minute), two_digits(second)),
        _ => return Err(invalid()),
    };
    match (hour, minute, second) {
        (Some(hour), Some(minute), Some(second)) if second < 60 => {
            NaiveTime::from_hms_opt(hour, minute, second).ok_or_else(invalid)
        }
        _ => Err(invalid()),
    }
}

/// `HH:MM`, or `HH:MM:SS` when the time has seconds (fractions are not kept).
fn format_time(time: NaiveTime) -> String {
    if time.second() == 0 {
        time.format("%H:%M").to_string()
    } else {
        time.format("%H:%M:%S").to_string()
    }
}

fn local_time(at: &DateTime<Tz>) -> String {
    format!("{} {}", at.format("%a %Y-%m-%d %H:%M:%S"), at.timezone().name())
}

fn join(allowlist: &[IpNet]) -> String {
    allowlist.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    fn window(days: &[Weekday], start: NaiveTime, end: NaiveTime, timezone: Tz) -> TimeWindow {
        TimeWindow {
            days: days.to_vec(),
            start,
            end,
            timezone,
        }
    }

    fn ips(list: &[&str]) -> Conditions {
        Conditions {
            ip_allowlist: list.iter().map(|raw| parse_ip_allowlist_entry(raw).unwrap()).collect(),
            time_window: None,
        }
    }

    fn ip(raw: &str) -> IpAddr {
        raw.parse().unwrap()
    }

    // 2024-01-15 is a Monday; New York is on EST (UTC-5) then, EDT (UTC-4) on 2024-07-15.

    #[test]
    fn empty_conditions_admit_everything() {
        let conditions = Conditions::default();
        assert!(conditions.is_empty());
        assert_eq!(conditions.admits(ip("203.0.113.9"), utc(2024, 1, 15, 3, 0)), Ok(()));
    }

    #[test]
    fn ipv4_cidr_admits_addresses_inside_and_rejects_outside() {
        let conditions = ips(&["10.0.0.0/8"]);
        assert_eq!(conditions.admits_ip(ip("10.200.3.4")), Ok(()));
        assert_eq!(
            conditions.admits_ip(ip("11.0.0.1")),
            Err(ConditionFailure::IpNotAllowed {
                ip: ip("11.0.0.1"),
                allowlist: conditions.ip_allowlist.clone()
            })
        );
    }

    #[test]
    fn ipv6_cidr_admits_addresses_inside_and_rejects_outside() {
        let conditions = ips(&["2001:db8::/32"]);
        assert_eq!(conditions.admits_ip(ip("2001:db8:ffff::1")), Ok(()));
        assert!(conditions.admits_ip(ip("2001:db9::1")).is_err());
        assert!(conditions.admits_ip(ip("10.0.0.1")).is_err());
    }

    #[test]
    fn bare_addresses_are_single_host_networks() {
        assert_eq!(parse_ip_allowlist_entry("10.0.0.7").unwrap().to_string(), "10.0.0.7/32");
        assert_eq!(
            parse_ip_allowlist_entry("2001:db8::7").unwrap().to_string(),
            "2001:db8::7/128"
        );
        let conditions = ips(&["10.0.0.7"]);
        assert_eq!(conditions.admits_ip(ip("10.0.0.7")), Ok(()));
        assert!(conditions.admits_ip(ip("10.0.0.8")).is_err());
    }

    #[test]
    fn cidr_with_host_bits_set_covers_its_whole_network() {
        let conditions = ips(&["10.1.2.3/16"]);
        assert_eq!(conditions.admits_ip(ip("10.1.200.200")), Ok(()));
        assert!(conditions.admits_ip(ip("10.2.0.1")).is_err());
    }

    #[test]
    fn ipv4_mapped_ipv6_client_is_checked_as_ipv4() {
        let conditions = ips(&["10.0.0.0/8"]);
        assert_eq!(conditions.admits_ip(ip("::ffff:10.0.0.7")), Ok(()));
        assert!(conditions.admits_ip(ip("::ffff:11.0.0.7")).is_err());
    }

    #[test]
    fn ip_failure_names_the_address_and_the_allowlist() {
        let failure = ips(&["10.0.0.0/8", "2001:db8::/32"])
            .admits_ip(ip("203.0.113.9"))
            .unwrap_err();
        assert_eq!(
            failure.to_string(),
            "client IP 203.0.113.9 is not in the ip_allowlist [10.0.0.0/8, 2001:db8::/32]"
        );
    }

    #[test]
    fn malformed_ip_allowlist_entries_are_rejected() {
        for raw in [
            "10.0.0.0/33",
            "10.0.0",
            "example.com",
            "",
            " 10.0.0.1",
            "2001:db8::/129",
        ] {
            assert_eq!(
                parse_ip_allowlist_entry(raw),
                Err(ConditionsError::InvalidIpAllowlistEntry(raw.to_owned())),
                "{raw:?}"
            );
        }
        let err = serde_json::from_value::<Conditions>(json!({"ip_allowlist": ["10.0.0.0/33"]})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ip_allowlist entry \"10.0.0.0/33\" is neither an IP address nor a CIDR such as \"10.0.0.0/8\" or \"2001:db8::/32\""
        );
    }

    #[test]
    fn daytime_window_is_half_open() {
        let w = window(&[], hm(9, 0), hm(17, 0), Tz::UTC);
        assert!(!w.contains(utc(2024, 1, 15, 8, 59)));
        assert!(w.contains(utc(2024, 1, 15, 9, 0)));
        assert!(w.contains(utc(2024, 1, 15, 16, 59)));
        assert!(!w.contains(utc(2024, 1, 15, 17, 0)));
    }

    #[test]
    fn window_days_restrict_the_weekday() {
        let w = window(&[Weekday::Mon, Weekday::Tue], hm(9, 0), hm(17, 0), Tz::UTC);
        assert!(w.contains(utc(2024, 1, 15, 12, 0))); // Monday
        assert!(w.contains(utc(2024, 1, 16, 12, 0))); // Tuesday
        assert!(!w.contains(utc(2024, 1, 17, 12, 0))); // Wednesday
        assert!(!w.contains(utc(2024, 1, 14, 12, 0))); // Sunday
    }

    #[test]
    fn window_past_midnight_covers_both_sides_of_midnight() {
        let w = window(&[], hm(22, 0), hm(6, 0), Tz::UTC);
        assert!(w.wraps_midnight());
        assert!(w.contains(utc(2024, 1, 15, 22, 0)));
        assert!(w.contains(utc(2024, 1, 15, 23, 59)));
        assert!(w.contains(utc(2024, 1, 16, 0, 0)));
        assert!(w.contains(utc(2024, 1, 16, 5, 59)));
        assert!(!w.contains(utc(2024, 1, 16, 6, 0)));
        assert!(!w.contains(utc(2024, 1, 16, 12, 0)));
        assert!(!w.contains(utc(2024, 1, 16, 21, 59)));
    }

    #[test]
    fn days_of_a_window_past_midnight_name_the_day_it_started() {
        // Friday night 22:00 until Saturday 06:00 only.
        let w = window(&[Weekday::Fri], hm(22, 0), hm(6, 0), Tz::UTC);
        assert!(w.contains(utc(2024, 1, 19, 23, 0))); // Friday 23:00
        assert!(w.contains(utc(2024, 1, 20, 5, 0))); // Saturday 05:00, started Friday
        assert!(!w.contains(utc(2024, 1, 20, 23, 0))); // Saturday 23:00 starts a Saturday window
        assert!(!w.contains(utc(2024, 1, 19, 5, 0))); // Friday 05:00 belongs to Thursday's window
    }

    #[test]
    fn equal_start_and_end_is_a_whole_day_from_start() {
        let w = window(&[Weekday::Sat], hm(0, 0), hm(0, 0), Tz::UTC);
        assert!(w.contains(utc(2024, 1, 20, 0, 0))); // Saturday
        assert!(w.contains(utc(2024, 1, 20, 23, 59)));
        assert!(!w.contains(utc(2024, 1, 21, 0, 0))); // Sunday
        assert!(!w.contains(utc(2024, 1, 19, 23, 59))); // Friday
    }

    #[test]
    fn window_in_new_york_uses_new_york_time_in_winter() {
        let w = window(
            &[Weekday::Mon],
            hm(9, 0),
            hm(17, 0),
            "America/New_York".parse().unwrap(),
        );
        // 13:30Z = 08:30 EST: inside 09-17 in UTC, outside in New York.
        assert!(!w.contains(utc(2024, 1, 15, 13, 30)));
        // 14:00Z = 09:00 EST.
        assert!(w.contains(utc(2024, 1, 15, 14, 0)));
        // 21:59Z = 16:59 EST; 22:00Z = 17:00 EST.
        assert!(w.contains(utc(2024, 1, 15, 21, 59)));
        assert!(!w.contains(utc(2024, 1, 15, 22, 0)));
    }

    #[test]
    fn window_in_new_york_follows_daylight_saving_time_in_summer() {
        let w = window(&[], hm(9, 0), hm(17, 0), "America/New_York".parse().unwrap());
        assert!(w.contains(utc(2024, 7, 15, 13, 0))); // 09:00 EDT
        assert!(!w.contains(utc(2024, 7, 15, 12, 59))); // 08:59 EDT
    }

    #[test]
    fn local_weekday_decides_not_the_utc_weekday() {
        // Monday 02:00Z is still Sunday 21:00 in New York.
        let w = window(
            &[Weekday::Sun],
            hm(20, 0),
            hm(23, 0),
            "America/New_York".parse().unwrap(),
        );
        assert!(w.contains(utc(2024, 1, 15, 2, 0)));
        let monday_only = window(
            &[Weekday::Mon],
            hm(20, 0),
            hm(23, 0),
            "America/New_York".parse().unwrap(),
        );
        assert!(!monday_only.contains(utc(2024, 1, 15, 2, 0)));
    }

    #[test]
    fn outside_window_failure_shows_local_time_and_window() {
        let w = window(
            &[Weekday::Mon, Weekday::Tue],
            hm(9, 0),
            hm(17, 0),
            "America/New_York".parse().unwrap(),
        );
        let failure = w.admits(utc(2024, 1, 15, 13, 30)).unwrap_err();
        assert_eq!(
            failure.to_string(),
            "request time Mon 2024-01-15 08:30:00 America/New_York is outside the time window mon,tue 09:00-17:00 America/New_York"
        );
        let night = window(&[], hm(22, 0), hm(6, 0), Tz::UTC);
        assert_eq!(
            night.admits(utc(2024, 1, 15, 12, 0)).unwrap_err().to_string(),
            "request time Mon 2024-01-15 12:00:00 UTC is outside the time window every day 22:00-06:00 (ending the next day) UTC"
        );
    }

    #[test]
    fn ip_condition_is_checked_before_time_window() {
        let conditions = Conditions {
            ip_allowlist: vec![parse_ip_allowlist_entry("10.0.0.0/8").unwrap()],
            time_window: Some(window(&[], hm(9, 0), hm(17, 0), Tz::UTC)),
        };
        let night = utc(2024, 1, 15, 3, 0);
        let day = utc(2024, 1, 15, 10, 0);
        assert!(matches!(
            conditions.admits(ip("1.1.1.1"), night),
            Err(ConditionFailure::IpNotAllowed { .. })
        ));
        assert!(matches!(
            conditions.admits(ip("10.0.0.1"), night),
            Err(ConditionFailure::OutsideTimeWindow { .. })
        ));
        assert_eq!(conditions.admits(ip("10.0.0.1"), day), Ok(()));
    }

    #[test]
    fn conditions_deserialize_from_the_wire_shape() {
        let conditions: Conditions = serde_json::from_value(json!({
            "ip_allowlist": ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"],
            "time_window": {"days": ["mon", "Tuesday", "FRI"], "start": "09:00", "end": "17:30", "timezone": "Europe/Berlin"}
        }))
        .unwrap();
        assert_eq!(
            conditions
                .ip_allowlist
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            vec!["10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32"]
        );
        assert_eq!(
            conditions.time_window,
            Some(window(
                &[Weekday::Mon, Weekday::Tue, Weekday::Fri],
                hm(9, 0),
                hm(17, 30),
                "Europe/Berlin".parse().unwrap()
            ))
        );
    }

    #[test]
    fn conditions_serialize_canonically_and_round_trip() {
        let conditions: Conditions = serde_json::from_value(json!({
            "ip_allowlist": ["10.0.0.7"],
            "time_window": {"days": ["Monday"], "start": "22:00", "end": "06:00"}
        }))
        .unwrap();
        let json = serde_json::to_value(&conditions).unwrap();
        assert_eq!(
            json,
            json!({
                "ip_allowlist": ["10.0.0.7/32"],
                "time_window": {"days": ["mon"], "start": "22:00", "end": "06:00", "timezone": "UTC"}
            })
        );
        assert_eq!(serde_json::from_value::<Conditions>(json).unwrap(), conditions);
    }

    #[test]
    fn empty_conditions_serialize_as_an_empty_object() {
        assert_eq!(serde_json::to_value(Conditions::default()).unwrap(), json!({}));
        assert_eq!(
            serde_json::from_value::<Conditions>(json!({})).unwrap(),
            Conditions::default()
        );
        assert_eq!(
            serde_json::from_value::<Conditions>(json!({"ip_allowlist": null, "time_window": null})).unwrap(),
            Conditions::default()
        );
    }

    #[test]
    fn one_claw_after_and_before_spelling_is_read_as_start_and_end() {
        let w: TimeWindow =
            serde_json::from_value(json!({"after": "08:00", "before": "20:00", "timezone": "UTC"})).unwrap();
        assert_eq!(w, window(&[], hm(8, 0), hm(20, 0), Tz::UTC));
    }

    #[test]
    fn time_window_without_timezone_is_utc() {
        let w: TimeWindow = serde_json::from_value(json!({"start": "08:00", "end": "20:00"})).unwrap();
        assert_eq!(w.timezone, Tz::UTC);
        assert!(w.days.is_empty());
    }

    #[test]
    fn unknown_condition_keys_are_rejected() {
        let err = serde_json::from_value::<Conditions>(json!({"ip_allow_list": ["10.0.0.0/8"]})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown field `ip_allow_list`, expected `ip_allowlist` or `time_window`"
        );
        assert!(serde_json::from_value::<TimeWindow>(json!({"start": "08:00", "end": "20:00", "tz": "UTC"})).is_err());
    }

    #[test]
    fn malformed_time_window_fields_are_rejected_with_clear_errors() {
        let err = |value: serde_json::Value| serde_json::from_value::<TimeWindow>(value).unwrap_err().to_string();
        assert_eq!(
            err(json!({"days": ["someday"], "start": "08:00", "end": "20:00"})),
            "time_window day \"someday\" is not a day of the week; expected mon..sun or monday..sunday"
        );
        assert_eq!(
            err(json!({"start": "8:00", "end": "20:00"})),
            "time_window start \"8:00\" is not a time of day \"HH:MM\" between 00:00 and 23:59"
        );
        assert_eq!(
            err(json!({"start": "08:00", "end": "24:00"})),
            "time_window end \"24:00\" is not a time of day \"HH:MM\" between 00:00 and 23:59"
        );
        assert_eq!(
            err(json!({"start": "08:00", "end": "20:00", "timezone": "Mars/Olympus"})),
            "time_window timezone \"Mars/Olympus\" is not an IANA time zone name such as \"UTC\" or \"America/New_York\""
        );
        for bad in [
            "08:60",
            "08-00",
            "0800",
            "08:00:60",
            "08:00:00:00",
            "+8:00",
            "08:0a",
            "",
        ] {
            assert_eq!(
                parse_time("start", bad),
                Err(ConditionsError::InvalidTime {
                    field: "start",
                    value: bad.to_owned()
                }),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_time("start", "23:59:30"),
            Ok(NaiveTime::from_hms_opt(23, 59, 30).unwrap())
        );
    }

    #[test]
    fn days_accept_short_and_long_names_in_any_case() {
        let expected = [
            ("mon", Weekday::Mon),
            ("TUE", Weekday::Tue),
            ("Wednesday", Weekday::Wed),
            ("thursday", Weekday::Thu),
            ("Fri", Weekday::Fri),
            ("SATURDAY", Weekday::Sat),
            ("sun", Weekday::Sun),
        ];
        for (raw, day) in expected {
            assert_eq!(parse_day(raw), Ok(day), "{raw}");
        }
        assert_eq!(parse_day("tues"), Err(ConditionsError::InvalidDay("tues".into())));
    }

    #[test]
    fn time_window_with_seconds_keeps_them_on_the_wire() {
        let w = window(&[], NaiveTime::from_hms_opt(9, 0, 30).unwrap(), hm(17, 0), Tz::UTC);
        let json = serde_json::to_value(&w).unwrap();
        assert_eq!(
            json,
            json!({"days": [], "start": "09:00:30", "end": "17:00", "timezone": "UTC"})
        );
        assert_eq!(serde_json::from_value::<TimeWindow>(json).unwrap(), w);
    }

    fn any_weekday() -> impl Strategy<Value = Weekday> {
        prop::sample::select(vec![
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ])
    }

    proptest! {
        #[test]
        fn window_without_days_admits_exactly_the_times_between_start_and_end(
            start in 0u32..1440, end in 0u32..1440, probe in 0u32..1440, near in 0u8..6, day in 1u32..29,
        ) {
            // Half the probes sit on or next to a boundary, where off-by-one mistakes live.
            let minute_of_day = match near {
                0 => start,
                1 => end,
                2 => (start + 1439) % 1440,
                3 => (end + 1439) % 1440,
                _ => probe,
            };
            let w = window(&[], hm(start / 60, start % 60), hm(end / 60, end % 60), Tz::UTC);
            let now = utc(2024, 2, day, minute_of_day / 60, minute_of_day % 60);
            let expected = if start < end {
                start <= minute_of_day && minute_of_day < end
            } else {
                minute_of_day >= start || minute_of_day < end
            };
            prop_assert_eq!(w.contains(now), expected);
        }

        #[test]
        fn every_listed_day_is_the_same_as_no_days(
            start in 0u32..1440, end in 0u32..1440, minutes in 0i64..(60 * 24 * 365),
        ) {
            let all = [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];
            let listed = window(&all, hm(start / 60, start % 60), hm(end / 60, end % 60), chrono_tz::Europe::Berlin);
            let unlisted = TimeWindow { days: vec![], ..listed.clone() };
            let now = utc(2024, 1, 1, 0, 0) + chrono::Duration::minutes(minutes);
            prop_assert_eq!(listed.contains(now), unlisted.contains(now));
        }

        #[test]
        fn a_window_for_some_days_admits_a_subset_of_the_same_window_for_every_day(
            days in prop::collection::vec(any_weekday(), 0..4),
            start in 0u32..1440, end in 0u32..1440, minutes in 0i64..(60 * 24 * 365),
        ) {
            let some = window(&days, hm(start / 60, start % 60), hm(end / 60, end % 60), chrono_tz::America::New_York);
            let every = TimeWindow { days: vec![], ..some.clone() };
            let now = utc(2024, 1, 1, 0, 0) + chrono::Duration::minutes(minutes);
            if some.contains(now) {
                prop_assert!(every.contains(now));
            }
        }

        #[test]
        fn an_address_inside_a_listed_network_is_admitted(a in any::<u32>(), prefix in 0u8..=32, host in any::<u32>()) {
            let net = ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(a), prefix).unwrap();
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
            let inside = std::net::Ipv4Addr::from((a & mask) | (host & !mask));
            let conditions = Conditions { ip_allowlist: vec![IpNet::V4(net)], time_window: None };
            prop_assert_eq!(conditions.admits_ip(IpAddr::V4(inside)), Ok(()));
        }
    }
}
