use std::fmt;

/// Errors of the calls that answer something ([`Client::guard`](crate::Client::guard)).
/// [`Client::track`](crate::Client::track) never errors.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// No URL or API key (or `BURNRATE_DISABLED=1`).
    NotConfigured,
    /// Network error or timeout.
    Http(String),
    /// The server answered this status without a usable answer.
    Status(u16),
    /// The server's answer could not be read.
    InvalidResponse(String),
    /// The client's background runtime has stopped.
    Shutdown,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotConfigured => f.write_str("burnrate: no URL or API key configured"),
            Error::Http(e) => write!(f, "burnrate: request failed: {e}"),
            Error::Status(s) => write!(f, "burnrate: server answered HTTP {s}"),
            Error::InvalidResponse(e) => write!(f, "burnrate: unreadable answer: {e}"),
            Error::Shutdown => f.write_str("burnrate: client is shut down"),
        }
    }
}

impl std::error::Error for Error {}
