//! `docs/metrics.md` must be exactly what the metric tables generate.

use std::path::Path;

#[test]
fn metrics_doc_is_generated_from_the_tables() {
    let want = tfo_collectors::docs::metrics_markdown(&[tfo_collectors::docs::CollectorDoc {
        name: "system",
        intro: "OpenTelemetry semantic-convention host metrics (the names the OpenTelemetry \
         Collector's hostmetrics receiver uses). Toggles: `cpu` (cpu and load), `memory`, \
         `disk` (disk I/O and filesystems), `network`; `system.uptime` is always on.",
        tables: tfo_collectors::system::metric_tables(),
    }]);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/metrics.md");
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/metrics.md is stale: run `UPDATE_DOCS=1 cargo test -p tfo-collectors --test docs`"
    );
}
