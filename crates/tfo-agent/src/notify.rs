//! systemd readiness notification (sd_notify): `READY=1` once the first collection cycle has
//! run (the same moment `/readyz` turns ready), `STOPPING=1` when shutdown begins. A unit
//! with `Type=notify` (deploy/systemd/tfo-agent.service) waits for it. Without
//! `$NOTIFY_SOCKET` (not started by systemd) this does nothing.

use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends one state string to `$NOTIFY_SOCKET`; failures are logged at debug and ignored
/// (readiness is a courtesy to the service manager, never a reason to stop).
pub fn send(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let result = (|| -> std::io::Result<()> {
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name)?
            }
            None => SocketAddr::from_pathname(&path)?,
        };
        let socket = UnixDatagram::unbound()?;
        socket.send_to_addr(state.as_bytes(), &addr)?;
        Ok(())
    })();
    match result {
        Ok(()) => tracing::debug!(state, "notified the service manager"),
        Err(e) => {
            tracing::debug!(state, error = %e, "cannot notify the service manager ($NOTIFY_SOCKET)")
        }
    }
}
