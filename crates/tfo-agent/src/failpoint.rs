//! Fault injection for black-box tests, compiled into debug builds only: the environment
//! variable `TFO_AGENT_FAILPOINTS` lists failpoints (comma-separated) that fire once per
//! process. Release builds have none, so no environment can make a production agent fail.

/// Whether failpoint `name` fires now (at most once per process and name).
#[cfg(debug_assertions)]
pub fn fire(name: &str) -> bool {
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    static FIRED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let Ok(list) = std::env::var("TFO_AGENT_FAILPOINTS") else {
        return false;
    };
    if !list.split(',').any(|f| f.trim() == name) {
        return false;
    }
    FIRED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(name.to_string())
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn fire(_name: &str) -> bool {
    false
}
