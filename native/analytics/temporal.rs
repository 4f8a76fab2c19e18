//! Configurable temporal features: a rolling statistic of any base feature over a window of
//! updates or of time, chosen when the engine is created.
//!
//! The base vector fixes its windows (they are part of the names the models were trained on);
//! these specs let a user add more without a schema change: `imbalance_5:mean:30s` appends
//! `imbalance_5_mean_30s` after the base features. Each spec keeps its own window and running
//! power sums, so the cost per update is O(1) amortized whatever the window length.

use std::collections::VecDeque;

use super::moments::Moments;
use super::schema::FEATURES;
use crate::error::BookError;

/// The grammar and semantics, rendered into `docs/features.md`.
pub const TEMPORAL_DOC: &str = "\
A spec is `SOURCE:STAT:WINDOW`, for example `imbalance_5:mean:30s` or `mid:roc:500u`, given when \
the engine is created (`BookEngine(..., features=True, temporal=[...])`, or \
`book-replay --temporal`). Each spec appends one feature named `SOURCE_STAT_WINDOW` (here \
`imbalance_5_mean_30s`, `mid_roc_500u`) after the base features, in the order given.\n\
\n\
* `SOURCE`: any base feature name.\n\
* `WINDOW`: `Nu` = the last N updates of the symbol, the current one included (2 <= N <= 100000); \
`Nms`, `Ns` or `Nm` = the updates with `ts > now - T` (1 ms <= T <= 24 h; the name spells T in the \
largest unit that divides it). Timestamps are the envelope `ts` made non-decreasing per symbol \
(`now = max(ts, previous now)`).\n\
* `STAT`: `mean`, `std` (population), `skew` (population, `mean((x - m)^3) / std^3`) over the \
present values of SOURCE in the window; `roc` = `x_now - x_then`; `accel` = `roc_now - roc_then`, \
where `then` is the update N updates before the current one (`Nu`) or the last update with \
`ts <= now - T` (time windows), and `roc_then` is that update's own `roc` for the same window.\n\
* Missing: `mean` with no present value, `std` with fewer than 2, `skew` with fewer than 3 or a zero \
variance, `roc` when `x_now` or `x_then` is missing or no such update exists, `accel` when either \
`roc` is missing. Units are the source's (`skew` is a ratio). Normalisation and the mask work as \
for the base features.\n";

const MAX_UPDATES: usize = 100_000;
const MAX_MILLIS: i64 = 24 * 3_600_000;
/// Running sums are recomputed from the window at least this often (bounds float drift).
const MIN_REBUILD: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    Mean,
    Std,
    Skew,
    Roc,
    Accel,
}

impl Stat {
    fn parse(s: &str) -> Option<Stat> {
        Some(match s {
            "mean" => Stat::Mean,
            "std" => Stat::Std,
            "skew" => Stat::Skew,
            "roc" => Stat::Roc,
            "accel" => Stat::Accel,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stat::Mean => "mean",
            Stat::Std => "std",
            Stat::Skew => "skew",
            Stat::Roc => "roc",
            Stat::Accel => "accel",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    Updates(usize),
    Millis(i64),
}

impl Window {
    fn parse(s: &str) -> Option<Window> {
        let split = s.find(|c: char| !c.is_ascii_digit())?;
        let (digits, unit) = s.split_at(split);
        if digits.is_empty() || digits.len() > 9 {
            return None;
        }
        let n: i64 = digits.parse().ok()?;
        let w = match unit {
            "u" => Window::Updates(n as usize),
            "ms" => Window::Millis(n),
            "s" => Window::Millis(n * 1_000),
            "m" => Window::Millis(n * 60_000),
            _ => return None,
        };
        match w {
            Window::Updates(n) if (2..=MAX_UPDATES).contains(&n) => Some(w),
            Window::Millis(t) if (1..=MAX_MILLIS).contains(&t) => Some(w),
            _ => None,
        }
    }

    /// Canonical spelling, used in the feature name.
    pub fn label(self) -> String {
        match self {
            Window::Updates(n) => format!("{n}u"),
            Window::Millis(t) if t % 60_000 == 0 => format!("{}m", t / 60_000),
            Window::Millis(t) if t % 1_000 == 0 => format!("{}s", t / 1_000),
            Window::Millis(t) => format!("{t}ms"),
        }
    }

    fn describe(self) -> String {
        match self {
            Window::Updates(n) => format!("{n} updates"),
            Window::Millis(t) if t % 1_000 == 0 => format!("{} s", t / 1_000),
            Window::Millis(t) => format!("{t} ms"),
        }
    }
}

/// One configured temporal feature.
#[derive(Clone, Debug)]
pub struct TemporalSpec {
    /// Index of the source in the base vector.
    pub source: usize,
    pub stat: Stat,
    pub window: Window,
    pub name: String,
}

impl TemporalSpec {
    pub fn parse(text: &str) -> Result<TemporalSpec, BookError> {
        let bad = |why: &str| BookError::Config(format!("temporal feature {text:?}: {why} (expected SOURCE:STAT:WINDOW, e.g. imbalance_5:mean:30s)"));
        let parts: Vec<&str> = text.split(':').collect();
        let [source, stat, window] = parts[..] else {
            return Err(bad("not three ':'-separated parts"));
        };
        let source_idx = FEATURES.iter().position(|f| f.name == source).ok_or_else(|| bad(&format!("unknown source feature {source:?}")))?;
        let stat = Stat::parse(stat).ok_or_else(|| bad(&format!("unknown statistic {stat:?}; use mean, std, skew, roc or accel")))?;
        let window = Window::parse(window).ok_or_else(|| bad(&format!("bad window {window:?}; use Nu (2..100000 updates) or Nms / Ns / Nm (1 ms..24 h)")))?;
        Ok(TemporalSpec { source: source_idx, stat, window, name: format!("{source}_{}_{}", stat.as_str(), window.label()) })
    }

    /// Parse a list, refusing duplicates and names that collide with base features.
    pub fn parse_all<S: AsRef<str>>(texts: &[S]) -> Result<Vec<TemporalSpec>, BookError> {
        let mut out: Vec<TemporalSpec> = Vec::with_capacity(texts.len());
        for t in texts {
            let spec = TemporalSpec::parse(t.as_ref())?;
            if FEATURES.iter().any(|f| f.name == spec.name) || out.iter().any(|s| s.name == spec.name) {
                return Err(BookError::Config(format!("temporal feature {:?}: the name {:?} is already taken", t.as_ref(), spec.name)));
            }
            out.push(spec);
        }
        Ok(out)
    }

    pub fn source_name(&self) -> &'static str {
        FEATURES[self.source].name
    }

    pub fn units(&self) -> &'static str {
        if self.stat == Stat::Skew {
            "ratio"
        } else {
            FEATURES[self.source].units
        }
    }

    pub fn window_text(&self) -> String {
        self.window.describe()
    }

    pub fn formula(&self) -> String {
        let src = self.source_name();
        let then = match self.window {
            Window::Updates(n) => format!("the update {n} updates before this one"),
            Window::Millis(t) => format!("the last update with ts <= now - {t} ms"),
        };
        match self.stat {
            Stat::Mean => format!("mean of {src} over the window"),
            Stat::Std => format!("population standard deviation of {src} over the window"),
            Stat::Skew => format!("population skewness of {src} over the window"),
            Stat::Roc => format!("{src} now - {src} at {then}"),
            Stat::Accel => format!("roc now - roc at {then}, roc = {src} now - {src} at that distance"),
        }
    }

    pub fn missing(&self) -> &'static str {
        match self.stat {
            Stat::Mean => "no present value in the window",
            Stat::Std => "fewer than 2 present values",
            Stat::Skew => "fewer than 3 present values, or zero variance",
            Stat::Roc => "either value missing, or no update that old",
            Stat::Accel => "either roc missing",
        }
    }
}

/// One update as a window remembers it; NaN marks a missing value.
#[derive(Clone, Copy, Debug)]
struct Entry {
    ts: i64,
    x: f64,
    roc: f64,
}

/// The window state of one spec for one symbol.
#[derive(Clone, Debug, Default)]
pub struct TemporalState {
    entries: VecDeque<Entry>,
    /// Time windows: the latest update that has left the window (`ts <= now - T`).
    gone: Option<Entry>,
    m: Moments,
    since_rebuild: usize,
    now: i64,
}

impl TemporalState {
    /// Take the current update's source value (None = missing) and return the feature's value.
    pub fn update(&mut self, spec: &TemporalSpec, ts: i64, x: Option<f64>) -> Option<f64> {
        self.now = self.now.max(ts);
        let x = x.filter(|v| v.is_finite()).unwrap_or(f64::NAN);
        let then = match spec.window {
            Window::Updates(n) => {
                // Entries hold up to the previous n updates: once n are kept the front is `then`,
                // and it leaves the statistics as the current update enters.
                let then = (self.entries.len() == n).then(|| self.entries[0]);
                if let Some(old) = then {
                    self.entries.pop_front();
                    if !old.x.is_nan() {
                        self.m.remove(old.x);
                    }
                }
                then
            }
            Window::Millis(t) => {
                let cut = self.now - t;
                while self.entries.front().is_some_and(|e| e.ts <= cut) {
                    let old = self.entries.pop_front().expect("checked non-empty");
                    if !old.x.is_nan() {
                        self.m.remove(old.x);
                    }
                    self.gone = Some(old);
                }
                self.gone
            }
        };
        let roc = then.map_or(f64::NAN, |e| x - e.x);
        self.entries.push_back(Entry { ts: self.now, x, roc });
        if !x.is_nan() {
            self.m.add(x);
        }
        self.since_rebuild += 1;
        if self.since_rebuild >= self.entries.len().max(MIN_REBUILD) {
            self.since_rebuild = 0;
            let xs = self.entries.iter().map(|e| e.x).filter(|v| !v.is_nan());
            self.m.rebuild(xs);
        }
        let v = match spec.stat {
            Stat::Mean => self.m.mean(),
            Stat::Std => self.m.std(),
            Stat::Skew => self.m.skew(),
            Stat::Roc => Some(roc),
            Stat::Accel => then.map(|e| roc - e.roc),
        };
        v.filter(|v| v.is_finite())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_name_themselves() {
        let s = TemporalSpec::parse("imbalance_5:mean:30s").unwrap();
        assert_eq!(s.name, "imbalance_5_mean_30s");
        assert_eq!(TemporalSpec::parse("mid:roc:500u").unwrap().name, "mid_roc_500u");
        assert_eq!(TemporalSpec::parse("mid:std:120000ms").unwrap().name, "mid_std_2m");
        assert_eq!(TemporalSpec::parse("mid:std:1500ms").unwrap().name, "mid_std_1500ms");
        for bad in ["mid", "nope:mean:10u", "mid:median:10u", "mid:mean:1u", "mid:mean:0s", "mid:mean:10x", "mid:mean:25h", "mid:mean:u"] {
            assert!(TemporalSpec::parse(bad).is_err(), "{bad}");
        }
        assert!(TemporalSpec::parse_all(&["mid:mean:10u", "mid:mean:10u"]).is_err());
        assert!(TemporalSpec::parse_all(&["mid:mean:1s", "mid:mean:1000ms"]).is_err());
    }

    #[test]
    fn update_window_statistics() {
        let spec = TemporalSpec::parse("mid:mean:3u").unwrap();
        let mut st = TemporalState::default();
        let got: Vec<_> = [1.0, 2.0, 3.0, 4.0].iter().enumerate().map(|(i, &x)| st.update(&spec, i as i64, Some(x))).collect();
        assert_eq!(got, vec![Some(1.0), Some(1.5), Some(2.0), Some(3.0)]);
        let roc = TemporalSpec::parse("mid:roc:2u").unwrap();
        let mut st = TemporalState::default();
        let got: Vec<_> = [1.0, 2.0, 4.0, 7.0].iter().map(|&x| st.update(&roc, 0, Some(x))).collect();
        assert_eq!(got, vec![None, None, Some(3.0), Some(5.0)]);
        let acc = TemporalSpec::parse("mid:accel:2u").unwrap();
        let mut st = TemporalState::default();
        let got: Vec<_> = [1.0, 2.0, 4.0, 7.0, 11.0, 16.0].iter().map(|&x| st.update(&acc, 0, Some(x))).collect();
        assert_eq!(got, vec![None, None, None, None, Some(4.0), Some(4.0)]);
    }

    #[test]
    fn time_window_uses_the_last_update_that_left() {
        let roc = TemporalSpec::parse("mid:roc:10ms").unwrap();
        let mut st = TemporalState::default();
        assert_eq!(st.update(&roc, 0, Some(1.0)), None);
        assert_eq!(st.update(&roc, 5, Some(2.0)), None);
        assert_eq!(st.update(&roc, 10, Some(4.0)), Some(3.0));
        assert_eq!(st.update(&roc, 16, Some(8.0)), Some(6.0));
        // A timestamp going back is clamped to the previous now.
        assert_eq!(st.update(&roc, 3, Some(9.0)), Some(7.0));
        let mean = TemporalSpec::parse("mid:mean:10ms").unwrap();
        let mut st = TemporalState::default();
        st.update(&mean, 0, Some(1.0));
        st.update(&mean, 5, None);
        assert_eq!(st.update(&mean, 9, Some(3.0)), Some(2.0));
        assert_eq!(st.update(&mean, 10, Some(5.0)), Some(4.0));
    }
}
