//! CPU: static description from `/proc/cpuinfo` (read once), utilisation from `/proc/stat`
//! deltas between two collections, load averages from `/proc/loadavg`.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use super::round2;
use crate::read::{read_trim, read_u64, under};

/// Jiffy counters of one `cpu` line.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Times {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl Times {
    fn total(&self) -> u64 {
        // guest and guest_nice are already counted in user and nice.
        self.user
            .saturating_add(self.nice)
            .saturating_add(self.system)
            .saturating_add(self.idle)
            .saturating_add(self.iowait)
            .saturating_add(self.irq)
            .saturating_add(self.softirq)
            .saturating_add(self.steal)
    }
}

/// What `/proc/stat` says, parsed once per collection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stat {
    pub total: Option<Times>,
    /// `(cpu index, times)`, in file order.
    pub per_cpu: Vec<(u32, Times)>,
    pub ctxt: Option<u64>,
    pub intr: Option<u64>,
    pub softirq: Option<u64>,
    pub btime: Option<u64>,
    pub procs_running: Option<u64>,
    pub procs_blocked: Option<u64>,
}

pub fn parse_stat(text: &str, max_cpus: usize) -> Stat {
    let mut s = Stat::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some(key) = it.next() else { continue };
        let first = || {
            line.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        };
        match key {
            "cpu" => s.total = parse_times(it),
            k if k.starts_with("cpu") && s.per_cpu.len() < max_cpus => {
                if let (Ok(i), Some(t)) = (k[3..].parse::<u32>(), parse_times(it)) {
                    s.per_cpu.push((i, t));
                }
            }
            "ctxt" => s.ctxt = first(),
            "intr" => s.intr = first(),
            "softirq" => s.softirq = first(),
            "btime" => s.btime = first(),
            "procs_running" => s.procs_running = first(),
            "procs_blocked" => s.procs_blocked = first(),
            _ => {}
        }
    }
    s
}

fn parse_times<'a>(it: impl Iterator<Item = &'a str>) -> Option<Times> {
    let v: Vec<u64> = it.take(8).map(|x| x.parse().unwrap_or(0)).collect();
    if v.len() < 4 {
        return None;
    }
    let g = |i: usize| v.get(i).copied().unwrap_or(0);
    Some(Times {
        user: g(0),
        nice: g(1),
        system: g(2),
        idle: g(3),
        iowait: g(4),
        irq: g(5),
        softirq: g(6),
        steal: g(7),
    })
}

/// Percentages of the time between two snapshots. `None` when no time passed (two
/// collections within one jiffy) or the counters went backwards (CPU hot-unplug).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percents {
    pub usage: f64,
    /// user + nice.
    pub user: f64,
    /// system + irq + softirq.
    pub system: f64,
    pub idle: f64,
    pub iowait: f64,
    pub steal: f64,
}

pub fn percents(prev: &Times, cur: &Times) -> Option<Percents> {
    if cur.total() < prev.total() {
        return None;
    }
    let total = (cur.total() - prev.total()) as f64;
    if total <= 0.0 {
        return None;
    }
    let d = |a: u64, b: u64| b.saturating_sub(a) as f64;
    let idle = d(prev.idle, cur.idle);
    let iowait = d(prev.iowait, cur.iowait);
    let p = |x: f64| round2((x / total * 100.0).clamp(0.0, 100.0));
    Some(Percents {
        usage: p(total - idle - iowait),
        user: p(d(prev.user, cur.user) + d(prev.nice, cur.nice)),
        system: p(d(prev.system, cur.system) + d(prev.irq, cur.irq) + d(prev.softirq, cur.softirq)),
        idle: p(idle),
        iowait: p(iowait),
        steal: p(d(prev.steal, cur.steal)),
    })
}

/// The parts of `/proc/cpuinfo` that do not change while the agent runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Static {
    pub logical: u32,
    pub physical: u32,
    pub model: Option<String>,
    pub vendor: Option<String>,
    /// Bytes.
    pub cache_size: Option<u64>,
    /// `cpu MHz` per processor index, as read at start (fallback when cpufreq is absent).
    pub mhz: Vec<(u32, f64)>,
}

pub fn parse_cpuinfo(text: &str) -> Static {
    let mut s = Static::default();
    let mut cores: BTreeSet<(String, String)> = BTreeSet::new();
    let mut cur_proc: Option<u32> = None;
    let mut phys = String::new();
    let mut arm_model: Option<String> = None;
    for line in text.lines().chain(std::iter::once("")) {
        let Some((k, v)) = line.split_once(':') else {
            if line.trim().is_empty() {
                phys.clear();
            }
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "processor" => {
                if let Ok(i) = v.parse::<u32>() {
                    s.logical += 1;
                    cur_proc = Some(i);
                }
            }
            "model name" | "cpu model" if s.model.is_none() && !v.is_empty() => {
                s.model = Some(v.to_string())
            }
            // Older ARM kernels; ppc64 uses "cpu".
            "Processor" | "cpu" if arm_model.is_none() && !v.is_empty() => {
                arm_model = Some(v.to_string())
            }
            "vendor_id" if s.vendor.is_none() => s.vendor = Some(v.to_string()),
            "CPU implementer" if s.vendor.is_none() => s.vendor = Some(arm_vendor(v).to_string()),
            "cpu MHz" => {
                if let (Some(i), Ok(m)) = (cur_proc, v.parse::<f64>()) {
                    s.mhz.push((i, m));
                }
            }
            "cache size" if s.cache_size.is_none() => {
                let mut it = v.split_whitespace();
                let n = it.next().and_then(|n| n.parse::<u64>().ok());
                let mult = match it.next() {
                    Some("KB") | Some("K") => 1024,
                    Some("MB") | Some("M") => 1024 * 1024,
                    _ => 1,
                };
                s.cache_size = n.map(|n| n * mult);
            }
            "physical id" => phys = v.to_string(),
            "core id" => {
                cores.insert((phys.clone(), v.to_string()));
            }
            _ => {}
        }
    }
    if s.model.is_none() {
        s.model = arm_model;
    }
    s.physical = if cores.is_empty() {
        s.logical
    } else {
        cores.len() as u32
    };
    s
}

fn arm_vendor(implementer: &str) -> &str {
    match implementer.to_ascii_lowercase().as_str() {
        "0x41" => "ARM",
        "0x42" => "Broadcom",
        "0x43" => "Cavium",
        "0x46" => "Fujitsu",
        "0x48" => "HiSilicon",
        "0x4e" => "NVIDIA",
        "0x50" => "APM",
        "0x51" => "Qualcomm",
        "0x53" => "Samsung",
        "0x61" => "Apple",
        "0x69" => "Intel",
        "0xc0" => "Ampere",
        _ => implementer,
    }
}

/// Current frequency of one CPU in MHz, from cpufreq (cheap, unlike re-reading
/// `/proc/cpuinfo`, which on x86 samples every CPU).
pub fn cur_mhz(root: &Path, cpu: u32, fallback: &Static) -> Option<f64> {
    read_u64(&under(
        root,
        &format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq"),
    ))
    .map(|khz| round2(khz as f64 / 1000.0))
    .or_else(|| {
        fallback
            .mhz
            .iter()
            .find(|(i, _)| *i == cpu)
            .map(|(_, m)| round2(*m))
    })
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadAvg {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
    /// Kernel scheduling entities (threads) that exist.
    pub threads: Option<u64>,
}

pub fn loadavg(root: &Path) -> Option<LoadAvg> {
    let s = read_trim(&under(root, "/proc/loadavg"))?;
    let f: Vec<&str> = s.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    Some(LoadAvg {
        one: n(0)?,
        five: n(1)?,
        fifteen: n(2)?,
        threads: f
            .get(3)
            .and_then(|v| v.split_once('/'))
            .and_then(|(_, t)| t.parse().ok()),
    })
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CoreUsage {
    pub core: u32,
    pub usage: Option<f64>,
    pub user: Option<f64>,
    pub system: Option<f64>,
    pub idle: Option<f64>,
    pub iowait: Option<f64>,
    pub steal: Option<f64>,
    pub mhz: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuInfo {
    /// Logical CPUs (what the OS schedules on).
    pub cpu_cores: u32,
    pub cpu_logical_cores: u32,
    pub cpu_physical_cores: u32,
    pub cpu_model: Option<String>,
    pub cpu_vendor: Option<String>,
    /// Average current frequency across CPUs, MHz.
    pub cpu_mhz: Option<f64>,
    /// Bytes.
    pub cpu_cache_size: Option<u64>,
    /// Busy percentage since the previous collection; `null` on the first one.
    pub cpu_usage: Option<f64>,
    pub cpu_user_percent: Option<f64>,
    pub cpu_system_percent: Option<f64>,
    pub cpu_idle_percent: Option<f64>,
    pub cpu_iowait_percent: Option<f64>,
    pub cpu_steal_percent: Option<f64>,
    pub load_avg1: Option<f64>,
    pub load_avg5: Option<f64>,
    pub load_avg15: Option<f64>,
    pub cpu_per_core: Vec<CoreUsage>,
}

pub fn build(
    root: &Path,
    st: &Static,
    prev: Option<&Stat>,
    cur: &Stat,
    load: Option<&LoadAvg>,
) -> CpuInfo {
    let total = match (prev.and_then(|p| p.total.as_ref()), cur.total.as_ref()) {
        (Some(a), Some(b)) => percents(a, b),
        _ => None,
    };
    let mut mhz_sum = 0.0;
    let mut mhz_n = 0u32;
    let per_core: Vec<CoreUsage> = cur
        .per_cpu
        .iter()
        .map(|(i, t)| {
            let p = prev
                .and_then(|p| p.per_cpu.iter().find(|(j, _)| j == i))
                .and_then(|(_, pt)| percents(pt, t));
            let mhz = cur_mhz(root, *i, st);
            if let Some(m) = mhz {
                mhz_sum += m;
                mhz_n += 1;
            }
            CoreUsage {
                core: *i,
                usage: p.map(|p| p.usage),
                user: p.map(|p| p.user),
                system: p.map(|p| p.system),
                idle: p.map(|p| p.idle),
                iowait: p.map(|p| p.iowait),
                steal: p.map(|p| p.steal),
                mhz,
            }
        })
        .collect();
    // /proc/stat lists online CPUs; cpuinfo may be missing (some containers).
    let logical = if st.logical > 0 {
        st.logical
    } else {
        cur.per_cpu.len() as u32
    };
    CpuInfo {
        cpu_cores: logical,
        cpu_logical_cores: logical,
        cpu_physical_cores: if st.physical > 0 {
            st.physical
        } else {
            logical
        },
        cpu_model: st.model.clone(),
        cpu_vendor: st.vendor.clone(),
        cpu_mhz: (mhz_n > 0).then(|| round2(mhz_sum / f64::from(mhz_n))),
        cpu_cache_size: st.cache_size,
        cpu_usage: total.map(|p| p.usage),
        cpu_user_percent: total.map(|p| p.user),
        cpu_system_percent: total.map(|p| p.system),
        cpu_idle_percent: total.map(|p| p.idle),
        cpu_iowait_percent: total.map(|p| p.iowait),
        cpu_steal_percent: total.map(|p| p.steal),
        load_avg1: load.map(|l| l.one),
        load_avg5: load.map(|l| l.five),
        load_avg15: load.map(|l| l.fifteen),
        cpu_per_core: per_core,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percents_over_an_interval() {
        let a = Times {
            user: 100,
            idle: 800,
            system: 50,
            iowait: 50,
            ..Default::default()
        };
        let b = Times {
            user: 150,
            idle: 850,
            system: 75,
            iowait: 75,
            ..Default::default()
        };
        let p = percents(&a, &b).unwrap();
        assert_eq!(
            (p.usage, p.user, p.system, p.idle, p.iowait),
            (50.0, 33.33, 16.67, 33.33, 16.67)
        );
        assert_eq!(percents(&a, &a), None);
        assert_eq!(percents(&b, &a), None);
    }
}
