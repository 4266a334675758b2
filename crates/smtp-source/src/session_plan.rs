//! The ESMTP, TLS and AUTH options both smtp-source and smtp-probe take
//! ([`SessionArgs`]), checked into what a session needs: the ESMTP
//! features to use, the TLS client configuration and the logins.

use std::sync::Arc;

use smtp_net::tls::{self, TlsVersion};
use smtp_proto::client::{Esmtp, Mechanism};

use crate::{cli::SessionArgs, config::ConfigError};

/// What [`SessionArgs`] ask of every session.
#[derive(Debug, Clone)]
pub struct SessionPlan {
    /// The ESMTP features asked for.
    pub esmtp: Esmtp,
    /// TLS, when asked for.
    pub tls: Option<TlsPlan>,
    /// AUTH, when asked for.
    pub auth: Option<AuthPlan>,
}

/// Checks `args`; `tls_host` is the name TLS sends and verifies unless
/// `--tls-sni` gives one (see [`tls_name`]).
///
/// # Errors
/// A bad value or a combination that cannot work, with a readable text.
pub fn session_plan(args: &SessionArgs, tls_host: &str) -> Result<SessionPlan, ConfigError> {
    let chunking = match &args.chunking {
        None => None,
        Some(b) => match b.trim().parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => return Err(invalid(format!("bad chunk size: {b}"))),
        },
    };
    let tls = tls_plan(args, tls_host)?;
    let auth = auth_plan(args, tls.is_some())?;
    let esmtp = Esmtp {
        ehlo: args.ehlo || tls.is_some() || auth.is_some(),
        pipelining: args.pipelining,
        chunking,
        size: args.size,
        eight_bit_mime: args.eight_bit_mime,
        smtputf8: args.smtputf8,
    };
    Ok(SessionPlan { esmtp, tls, auth })
}

fn invalid(text: String) -> ConfigError {
    ConfigError::Invalid {
        text,
        warning: None,
    }
}

/// When TLS starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsStart {
    /// `--starttls`: after EHLO.
    StartTls,
    /// `--tls-on-connect`: from the first byte.
    OnConnect,
}

/// `--starttls`/`--tls-on-connect` and their options, resolved.
#[derive(Debug, Clone)]
pub struct TlsPlan {
    /// When.
    pub start: TlsStart,
    /// The client configuration every connection shares (and with it the
    /// resumption cache).
    pub config: Arc<tls::rustls::ClientConfig>,
    /// The name sent as SNI and verified.
    pub server_name: tls::rustls::pki_types::ServerName<'static>,
}

/// `--auth` and its credentials.
#[derive(Debug, Clone)]
pub struct AuthPlan {
    /// `None`: the first of PLAIN and LOGIN the server offers.
    pub mechanism: Option<Mechanism>,
    /// Users and passwords, taken in turn by successive connections.
    pub users: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The default TLS server name: the host part of the target as typed
/// (`localhost` for a unix socket).
pub fn tls_name(addr: &str) -> String {
    if addr.starts_with("unix:") {
        return "localhost".to_owned();
    }
    let addr = addr.strip_prefix("inet:").unwrap_or(addr);
    match smtp_proto::postfix::host_port(addr, smtp_proto::postfix::BareWord::Host) {
        Ok((host, _)) if !host.is_empty() => host.to_owned(),
        _ => "localhost".to_owned(),
    }
}

fn tls_plan(cli: &SessionArgs, host: &str) -> Result<Option<TlsPlan>, ConfigError> {
    let start = match (cli.starttls, cli.tls_on_connect) {
        (false, false) => {
            if cli.tls_verify || cli.tls_ca.is_some() || cli.tls_sni.is_some() {
                return Err(invalid(
                    "TLS options need --starttls or --tls-on-connect".to_owned(),
                ));
            }
            return Ok(None);
        }
        (true, true) => {
            return Err(invalid(
                "use either --starttls or --tls-on-connect".to_owned(),
            ))
        }
        (true, false) => TlsStart::StartTls,
        (false, true) => TlsStart::OnConnect,
    };
    let version = match &cli.tls_protocol {
        None => None,
        Some(v) => Some(
            TlsVersion::parse(v)
                .ok_or_else(|| invalid(format!("bad TLS protocol: {v} (tls1.2 or tls1.3)")))?,
        ),
    };
    let options = tls::ClientOptions {
        verify: cli.tls_verify || cli.tls_ca.is_some(),
        ca_file: cli.tls_ca.clone(),
        version,
        resume: !cli.no_tls_resume,
    };
    let config = tls::client_config(&options).map_err(|e| invalid(e.to_string()))?;
    let name = cli.tls_sni.as_deref().unwrap_or(host);
    let server_name =
        tls::server_name(name).map_err(|_| invalid(format!("bad TLS server name: {name}")))?;
    Ok(Some(TlsPlan {
        start,
        config,
        server_name,
    }))
}

fn auth_plan(cli: &SessionArgs, tls: bool) -> Result<Option<AuthPlan>, ConfigError> {
    let Some(mech) = &cli.auth else {
        if cli.auth_user.is_some() || cli.auth_users.is_some() {
            return Err(invalid("credentials given without --auth".to_owned()));
        }
        return Ok(None);
    };
    let mechanism = match mech.to_ascii_uppercase().as_str() {
        "" => None,
        "PLAIN" => Some(Mechanism::Plain),
        "LOGIN" => Some(Mechanism::Login),
        _ => {
            return Err(invalid(format!(
                "bad AUTH mechanism: {mech} (PLAIN or LOGIN)"
            )))
        }
    };
    if !tls && !cli.auth_plaintext {
        return Err(invalid(
            "--auth sends a password: use --starttls or --tls-on-connect, or --auth-plaintext"
                .to_owned(),
        ));
    }
    let users = match (&cli.auth_users, &cli.auth_user, &cli.auth_password) {
        (Some(path), None, None) => {
            let text = std::fs::read(path).map_err(|e| {
                invalid(format!(
                    "open {}: {}",
                    path.display(),
                    smtp_net::strerror(&e)
                ))
            })?;
            let users: Vec<(Vec<u8>, Vec<u8>)> = text
                .split(|&b| b == b'\n')
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .filter(|l| !l.is_empty() && !l.starts_with(b"#"))
                .map(|l| match l.iter().position(|&b| b == b':') {
                    Some(i) => Ok((l[..i].to_vec(), l[i + 1..].to_vec())),
                    None => Err(invalid(format!(
                        "{}: a line without ':' (user:password)",
                        path.display()
                    ))),
                })
                .collect::<Result<_, _>>()?;
            if users.is_empty() {
                return Err(invalid(format!(
                    "{}: no user:password line",
                    path.display()
                )));
            }
            users
        }
        (None, Some(user), Some(password)) => {
            vec![(user.as_bytes().to_vec(), password.as_bytes().to_vec())]
        }
        _ => {
            return Err(invalid(
                "--auth needs --auth-user and --auth-password, or --auth-users FILE".to_owned(),
            ))
        }
    };
    Ok(Some(AuthPlan { mechanism, users }))
}
