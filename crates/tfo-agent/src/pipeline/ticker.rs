//! Periodic jobs on threads of their own (interval collectors, buffer upkeep): the thread
//! sleeps until the job is due, runs it and sleeps again, one wake-up per run. On the async
//! runtime a run cost three (the timer on a worker, the hand-off to a blocking-pool thread,
//! and back), which at a 1 s interval was about a sixth of the agent's CPU.
//!
//! The agent owns each thread through a task that ends with it, so stopping and
//! supervision work as for any other task: cancelling the token asks the thread to stop (a
//! run in progress finishes first), and a job that panics ends the thread and its task
//! after `on_panic` has reported it.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::stream::Stop;

/// Runs `job` at once and then every `interval` after the previous run was due, on a thread
/// named `tfo-<name>` (cut to the 15 bytes Linux keeps). A run that overruns delays the
/// next one (no burst of catch-up runs). Fails only when the thread cannot be created.
pub fn spawn(
    name: &str,
    interval: Duration,
    cancel: CancellationToken,
    mut job: impl FnMut() + Send + 'static,
    on_panic: impl FnOnce(&str) + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    let stop = Arc::new(Stop::default());
    let (done_tx, mut done) = tokio::sync::oneshot::channel::<()>();
    let thread_stop = stop.clone();
    std::thread::Builder::new()
        .name(thread_name(name))
        .spawn(move || {
            // Dropped when the thread ends, however it ends: that ends the owning task.
            let _done = done_tx;
            let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let mut due = Instant::now();
                loop {
                    let now = Instant::now();
                    if (due > now && thread_stop.wait(due - now)) || thread_stop.is_stopped() {
                        return;
                    }
                    job();
                    due += interval;
                    let now = Instant::now();
                    if due < now {
                        due = now + interval;
                    }
                }
            }));
            if let Err(p) = run {
                on_panic(&panic_message(p.as_ref()));
            }
        })?;
    Ok(tokio::spawn(async move {
        let _end = super::OnEnd;
        tokio::select! {
            _ = cancel.cancelled() => {
                stop.stop();
                let _ = done.await;
            }
            _ = &mut done => {}
        }
    }))
}

/// What a panic said (its `&str` or `String` payload).
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

fn thread_name(name: &str) -> String {
    let mut n = format!("tfo-{name}");
    n.truncate(15);
    n
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn thread_names_fit_the_kernel_limit() {
        assert_eq!(thread_name("system"), "tfo-system");
        assert_eq!(thread_name("node_exporter"), "tfo-node_export");
    }

    #[tokio::test]
    async fn runs_at_once_then_on_interval_and_stops_when_cancelled() {
        let runs = Arc::new(Mutex::new(Vec::new()));
        let (r, cancel) = (runs.clone(), CancellationToken::new());
        let start = Instant::now();
        let task = spawn(
            "t",
            Duration::from_millis(50),
            cancel.clone(),
            move || r.lock().unwrap().push(start.elapsed()),
            |_| {},
        )
        .unwrap();
        while runs.lock().unwrap().len() < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        cancel.cancel();
        task.await.unwrap();
        let ended = runs.lock().unwrap().len();
        std::thread::sleep(Duration::from_millis(120));
        let runs = runs.lock().unwrap().clone();
        assert_eq!(runs.len(), ended, "ran after its task ended: {runs:?}");
        assert!(runs[0] < Duration::from_millis(50), "{runs:?}");
        // Each run is due an interval after the previous one was due (never earlier).
        for (i, t) in runs.iter().enumerate().skip(1) {
            assert!(*t >= Duration::from_millis(50) * i as u32, "{runs:?}");
        }
    }

    #[tokio::test]
    async fn a_panicking_job_is_reported_and_ends_its_task() {
        let why = Arc::new(Mutex::new(String::new()));
        let w = why.clone();
        let task = spawn(
            "p",
            Duration::from_secs(60),
            CancellationToken::new(),
            || panic!("boom"),
            move |m| *w.lock().unwrap() = m.to_string(),
        )
        .unwrap();
        task.await.unwrap();
        assert_eq!(*why.lock().unwrap(), "boom");
    }
}
