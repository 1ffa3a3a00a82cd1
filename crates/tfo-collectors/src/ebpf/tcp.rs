//! TCP state transitions by (old, new) state, from `inet_sock_set_state`: at most 13 × 13
//! series, only the pairs seen since load.

use std::collections::BTreeMap;

use tfo_ebpf::snapshot::{TcpStats, tcp_state_name};

use super::{Emit, counter};
use crate::table::MetricDef;

/// The table; destructured by the mapping, so a row cannot be forgotten.
const ROWS: [MetricDef; 1] = [counter(
    "ebpf.tcp.state_transitions",
    "{transition}",
    &["old_state", "new_state"],
    "TCP socket state changes, by old and new state (kernel names: ESTABLISHED, SYN_SENT, \
     SYN_RECV, FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK, LISTEN, \
     CLOSING, NEW_SYN_RECV, BOUND_INACTIVE; UNKNOWN for another number).",
    "tp_btf/inet_sock_set_state",
)];

pub const METRICS: &[MetricDef] = &ROWS;

/// Maps the transitions seen; pairs whose numbers share a name (UNKNOWN) are added up.
pub(crate) fn map(tcp: &TcpStats, e: &mut Emit<'_>) {
    let [transitions] = &ROWS;
    let mut by_name: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for t in tcp.transitions.iter().filter(|t| t.count > 0) {
        let n = by_name
            .entry((tcp_state_name(t.old), tcp_state_name(t.new)))
            .or_default();
        *n = n.saturating_add(t.count);
    }
    e.counter(
        transitions,
        by_name.into_iter().map(|((old, new), n)| ([old, new], n)),
    );
}
