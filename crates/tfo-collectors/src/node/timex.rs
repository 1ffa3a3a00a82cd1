//! Kernel clock discipline from adjtimex(2) (node_exporter's `timex` collector).
//!
//! The call is read-only (`modes = 0`) and needs no privilege. It sits behind the
//! [`Adjtimex`] trait so fixture tests are deterministic. Conversions follow adjtimex(2)
//! and node_exporter: `offset` and `jitter` are in µs, or ns when `STA_NANO` is set;
//! `maxerror`, `esterror` and `tick` are in µs; `freq`, `ppsfreq` and `stabil` are ppm
//! with a 16-bit fraction. Clock state 5 (`TIME_ERROR`) means unsynchronised.

use std::io;

use super::{Out, counter_i, gauge_f, gauge_i};
use crate::table::{MetricDef, PromKind, Val};
use crate::{CollectError, CollectReport};

pub const METRICS: &[MetricDef] = &[
    gauge_i("node.timex.sync_status", "1", &[], "1 if the clock is synchronised to a reliable server (clock state is not TIME_ERROR), else 0.", "adjtimex(2) return value")
        .prom("node_timex_sync_status", PromKind::Gauge),
    gauge_f("node.timex.offset", "s", &[], "Offset between the local clock and the reference clock.", "adjtimex(2) offset (us, or ns with STA_NANO)")
        .prom("node_timex_offset_seconds", PromKind::Gauge),
    gauge_f("node.timex.frequency_adjustment", "1", &[], "Local clock frequency adjustment as a ratio (1 = none).", "adjtimex(2) 1 + freq / 2^16 / 1e6")
        .prom("node_timex_frequency_adjustment_ratio", PromKind::Gauge),
    gauge_f("node.timex.max_error", "s", &[], "Maximum error of the clock.", "adjtimex(2) maxerror (us)")
        .prom("node_timex_maxerror_seconds", PromKind::Gauge),
    gauge_f("node.timex.estimated_error", "s", &[], "Estimated error of the clock.", "adjtimex(2) esterror (us)")
        .prom("node_timex_estimated_error_seconds", PromKind::Gauge),
    gauge_i("node.timex.status", "1", &[], "Clock status bits (STA_*).", "adjtimex(2) status")
        .prom("node_timex_status", PromKind::Gauge),
    gauge_i("node.timex.loop_time_constant", "1", &[], "Phase-locked loop time constant.", "adjtimex(2) constant")
        .prom("node_timex_loop_time_constant", PromKind::Gauge),
    gauge_f("node.timex.tick", "s", &[], "Duration of a clock tick.", "adjtimex(2) tick (us)")
        .prom("node_timex_tick_seconds", PromKind::Gauge),
    gauge_f("node.timex.pps.frequency", "Hz", &[], "Pulse-per-second frequency.", "adjtimex(2) ppsfreq / 2^16 / 1e6")
        .prom("node_timex_pps_frequency_hertz", PromKind::Gauge),
    gauge_f("node.timex.pps.jitter", "s", &[], "Pulse-per-second jitter.", "adjtimex(2) jitter (us, or ns with STA_NANO)")
        .prom("node_timex_pps_jitter_seconds", PromKind::Gauge),
    gauge_i("node.timex.pps.shift", "1", &[], "Pulse-per-second calibration interval, as a power of two seconds.", "adjtimex(2) shift")
        .prom("node_timex_pps_shift_seconds", PromKind::Gauge),
    gauge_f("node.timex.pps.stability", "Hz", &[], "Pulse-per-second stability (average of recent frequency changes).", "adjtimex(2) stabil / 2^16 / 1e6")
        .prom("node_timex_pps_stability_hertz", PromKind::Gauge),
    counter_i("node.timex.pps.jitter_events", "{event}", &[], "Pulse-per-second jitter limit exceeded events.", "adjtimex(2) jitcnt")
        .prom("node_timex_pps_jitter_total", PromKind::Counter),
    counter_i("node.timex.pps.calibrations", "{interval}", &[], "Pulse-per-second calibration intervals.", "adjtimex(2) calcnt")
        .prom("node_timex_pps_calibration_total", PromKind::Counter),
    counter_i("node.timex.pps.errors", "{error}", &[], "Pulse-per-second calibration errors.", "adjtimex(2) errcnt")
        .prom("node_timex_pps_error_total", PromKind::Counter),
    counter_i("node.timex.pps.stability_exceeded", "{event}", &[], "Pulse-per-second stability limit exceeded events.", "adjtimex(2) stbcnt")
        .prom("node_timex_pps_stability_exceeded_total", PromKind::Counter),
    gauge_i("node.timex.tai_offset", "s", &[], "Offset between International Atomic Time and UTC.", "adjtimex(2) tai")
        .prom("node_timex_tai_offset_seconds", PromKind::Gauge),
];

/// The adjtimex(2) fields read, widened to `i64`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimexState {
    /// The return value: the clock state (`TIME_OK` 0 ... `TIME_ERROR` 5).
    pub clock_state: i64,
    pub offset: i64,
    pub freq: i64,
    pub maxerror: i64,
    pub esterror: i64,
    pub status: i64,
    pub constant: i64,
    pub tick: i64,
    pub ppsfreq: i64,
    pub jitter: i64,
    pub shift: i64,
    pub stabil: i64,
    pub jitcnt: i64,
    pub calcnt: i64,
    pub errcnt: i64,
    pub stbcnt: i64,
    pub tai: i64,
}

/// adjtimex(2), behind a trait so tests can answer with fixed values.
pub trait Adjtimex: Send + Sync {
    fn adjtimex(&self) -> io::Result<TimexState>;
}

/// The real, read-only adjtimex(2).
#[derive(Debug, Clone, Copy, Default)]
pub struct LibcAdjtimex;

impl Adjtimex for LibcAdjtimex {
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)] // widths differ per target
    fn adjtimex(&self) -> io::Result<TimexState> {
        // SAFETY: timex is plain data; all-zero (modes = 0: read only) is a valid value.
        let mut t: libc::timex = unsafe { std::mem::zeroed() };
        // SAFETY: `t` is a valid, writable timex; with modes = 0 nothing is changed.
        let rc = unsafe { libc::adjtimex(&mut t) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(TimexState {
            clock_state: i64::from(rc),
            offset: t.offset as i64,
            freq: t.freq as i64,
            maxerror: t.maxerror as i64,
            esterror: t.esterror as i64,
            status: i64::from(t.status),
            constant: t.constant as i64,
            tick: t.tick as i64,
            ppsfreq: t.ppsfreq as i64,
            jitter: t.jitter as i64,
            shift: i64::from(t.shift),
            stabil: t.stabil as i64,
            jitcnt: t.jitcnt as i64,
            calcnt: t.calcnt as i64,
            errcnt: t.errcnt as i64,
            stbcnt: t.stbcnt as i64,
            tai: i64::from(t.tai),
        })
    }
}

const TIME_ERROR: i64 = 5;
const STA_NANO: i64 = 0x2000;
/// ppm with a 16-bit binary fraction, as a plain ratio.
const PPM16: f64 = 1_000_000.0 * 65_536.0;

pub(crate) fn collect(source: &dyn Adjtimex, out: &mut Out<'_>, report: &mut CollectReport) {
    let t = match source.adjtimex() {
        Ok(t) => t,
        Err(source) => {
            report.errors.push(CollectError::Io {
                path: "adjtimex(2)".to_string(),
                source,
            });
            return;
        }
    };
    let fine = if t.status & STA_NANO != 0 { 1e9 } else { 1e6 };
    let values = [
        Val::I(i64::from(t.clock_state != TIME_ERROR)),
        Val::F(t.offset as f64 / fine),
        Val::F(1.0 + t.freq as f64 / PPM16),
        Val::F(t.maxerror as f64 / 1e6),
        Val::F(t.esterror as f64 / 1e6),
        Val::I(t.status),
        Val::I(t.constant),
        Val::F(t.tick as f64 / 1e6),
        Val::F(t.ppsfreq as f64 / PPM16),
        Val::F(t.jitter as f64 / fine),
        Val::I(t.shift),
        Val::F(t.stabil as f64 / PPM16),
        Val::I(t.jitcnt),
        Val::I(t.calcnt),
        Val::I(t.errcnt),
        Val::I(t.stbcnt),
        Val::I(t.tai),
    ];
    let mut b = out.batch(METRICS);
    for (row, v) in values.into_iter().enumerate() {
        b.add(row, &[], v);
    }
    b.finish();
}
