//! Which HTTP routes pass the gateway: an allow-list (issue 15). The gateway records every request line,
//! and decodes (records message by message) only the kernel websocket. A route that can run code or move
//! data in a way the gateway does not decode — a REST execute endpoint an extension adds, `/proxy/*` to a
//! port on the server, terminals, collaboration and event websockets — would be a way around the capture,
//! so anything not listed here is refused (403) and the refusal logged. The list, with the reason for each
//! entry, is in `docs/gateway.md`.
//!
//! Paths are matched after a JupyterHub prefix `/user/<name>` (single-user servers are served under it).

/// Why a route passes, or `Err` why it is refused.
pub fn decide(method: &str, path: &str) -> Result<&'static str, String> {
    let seg = segments(path);
    let refuse = |why: &str| Err(format!("{method} {path}: {why}"));
    match seg.as_slice() {
        // The kernel websocket is decoded message by message; kernel lifecycle calls run no code.
        ["api", "kernels"] => Ok("kernel list / start"),
        ["api", "kernels", _id] => Ok("kernel model / shutdown"),
        ["api", "kernels", _id, "channels"] => Ok("kernel websocket (decoded and recorded)"),
        ["api", "kernels", _id, "interrupt" | "restart"] => Ok("kernel interrupt / restart"),
        ["api", "kernels", _id, rest @ ..] => refuse(&format!(
            "`{}` under a kernel is not on the gateway's allow-list (REST execution endpoints run code \
             the capture cannot record)",
            rest.join("/")
        )),
        ["api", "sessions", ..] => {
            Ok("sessions (notebook ↔ kernel; the gateway learns paths from it)")
        }
        ["api", "kernelspecs", ..] | ["kernelspecs", ..] => Ok("kernel specs and logos"),
        ["api", "contents", ..] => {
            Ok("contents: notebooks and files read and saved (request recorded)")
        }
        ["files", ..] => Ok("file downloads (request recorded)"),
        ["api", "status" | "me" | "spec.yaml"] | ["api"] => Ok("server status"),
        ["api", "config", ..] => Ok("front-end configuration"),
        ["api", "nbconvert", ..] | ["nbconvert", ..] => {
            Ok("notebook export formats (no code runs)")
        }
        [
            "lab",
            "api",
            "extensions" | "settings" | "workspaces" | "translations" | "listings" | "themes",
            ..,
        ] => Ok("JupyterLab settings and metadata"),
        ["lab" | "tree" | "notebooks" | "edit" | "view" | "doc", ..] => {
            Ok("JupyterLab / Notebook pages")
        }
        ["static" | "custom", ..] | ["favicon.ico" | "robots.txt"] => Ok("static assets"),
        ["login" | "logout" | "oauth_callback" | ""] | ["hub", ..] => {
            Ok("login, logout, hub OAuth")
        }
        ["api", "terminals", ..] | ["terminals", ..] => {
            refuse("terminals run shell commands the gateway cannot record")
        }
        ["proxy" | "absproxy", ..] => {
            refuse("proxied ports carry traffic the gateway cannot record")
        }
        ["api", "events" | "collaboration" | "yjs", ..] => {
            refuse("event and collaboration channels are not decoded by the gateway")
        }
        _ => refuse("route not on the gateway's allow-list"),
    }
}

/// A request that ends a kernel's life (its capture session): restarts or shuts down a kernel, or deletes a
/// session (whose kernel goes with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle<'a> {
    /// `POST …/api/kernels/<id>/restart`.
    Restart(&'a str),
    /// `DELETE …/api/kernels/<id>`.
    ShutdownKernel(&'a str),
    /// `DELETE …/api/sessions/<id>`.
    ShutdownSession(&'a str),
}

/// The lifecycle request `method path` is, if any (paths read as [`decide`] reads them).
pub fn lifecycle<'a>(method: &str, path: &'a str) -> Option<Lifecycle<'a>> {
    match (method, segments(path).as_slice()) {
        ("POST", ["api", "kernels", id, "restart"]) => Some(Lifecycle::Restart(id)),
        ("DELETE", ["api", "kernels", id]) => Some(Lifecycle::ShutdownKernel(id)),
        ("DELETE", ["api", "sessions", id]) => Some(Lifecycle::ShutdownSession(id)),
        _ => None,
    }
}

/// The path's segments after any JupyterHub `/user/<name>` prefix.
fn segments(path: &str) -> Vec<&str> {
    strip_hub_prefix(path)
        .trim_start_matches('/')
        .split('/')
        .collect()
}

fn strip_hub_prefix(path: &str) -> &str {
    if let Some(rest) = path.strip_prefix("/user/")
        && let Some(i) = rest.find('/')
    {
        return &rest[i..];
    }
    path
}

#[cfg(test)]
mod tests {
    use super::{Lifecycle, decide, lifecycle};

    #[test]
    fn lifecycle_requests() {
        assert_eq!(
            lifecycle("POST", "/user/alice/api/kernels/k1/restart"),
            Some(Lifecycle::Restart("k1"))
        );
        assert_eq!(
            lifecycle("DELETE", "/api/kernels/k1"),
            Some(Lifecycle::ShutdownKernel("k1"))
        );
        assert_eq!(
            lifecycle("DELETE", "/user/bob/api/sessions/s1"),
            Some(Lifecycle::ShutdownSession("s1"))
        );
        assert_eq!(lifecycle("GET", "/api/kernels/k1"), None);
        assert_eq!(lifecycle("POST", "/api/kernels/k1/interrupt"), None);
    }

    #[test]
    fn the_allow_list() {
        for (m, p) in [
            ("GET", "/api/kernels"),
            ("POST", "/user/alice/api/kernels"),
            ("GET", "/api/kernels/abc/channels"),
            ("POST", "/api/kernels/abc/restart"),
            ("DELETE", "/api/kernels/abc"),
            ("POST", "/api/sessions"),
            ("GET", "/user/alice/api/contents/work/a.ipynb"),
            ("GET", "/user/alice/lab/tree/a.ipynb"),
            ("GET", "/static/lab/main.js"),
            ("GET", "/lab/api/settings/@jupyterlab/apputils"),
        ] {
            assert!(decide(m, p).is_ok(), "{m} {p}");
        }
        for (m, p) in [
            ("POST", "/api/kernels/abc/execute"),
            ("POST", "/user/alice/api/kernels/abc/execute"),
            ("GET", "/proxy/8080/"),
            ("GET", "/user/alice/proxy/8888/api/kernels"),
            ("POST", "/api/terminals"),
            ("GET", "/terminals/websocket/1"),
            ("GET", "/api/events/subscribe"),
            ("GET", "/api/collaboration/room/x"),
            ("GET", "/some/extension/endpoint"),
        ] {
            assert!(decide(m, p).is_err(), "{m} {p}");
        }
    }
}
