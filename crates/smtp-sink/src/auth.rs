//! Real AUTH (`--auth-users`): the user table and the SASL PLAIN and LOGIN
//! exchanges, pure and tested with tables.
//!
//! Postfix's sink answers any AUTH with 250; with `--auth-users` the sink
//! checks credentials instead. The conversation decides whether AUTH may
//! run at all (TLS, transaction, already authenticated); this module runs
//! one exchange: the AUTH command's mechanism and optional initial
//! response, then the client's continuation lines, each a base64 string
//! (or `*` to cancel, RFC 4954 §4).

use std::collections::HashMap;
use std::path::Path;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use bytes::Bytes;

/// Standard base64; the padding may be left out, as some clients do.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The `user:password` table. Its `Debug` shows how many users it has,
/// never a password.
#[derive(Clone, PartialEq, Eq)]
pub struct Users {
    map: HashMap<Box<[u8]>, Box<[u8]>>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Users({} entries)", self.map.len())
    }
}

impl Users {
    /// Parses `user:password` lines: the user ends at the first ":", the
    /// password is the rest of the line (it may hold ":"). A CR before the
    /// LF is dropped; empty lines and lines starting with "#" are skipped.
    ///
    /// # Errors
    /// `line N: ...` for a line without ":" or with an empty user, or
    /// `no users` for a file that holds none.
    pub fn parse(text: &[u8]) -> Result<Users, String> {
        let mut map = HashMap::new();
        for (i, line) in text.split(|b| *b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() || line.starts_with(b"#") {
                continue;
            }
            let Some(colon) = line.iter().position(|b| *b == b':') else {
                return Err(format!("line {}: expected user:password", i + 1));
            };
            if colon == 0 {
                return Err(format!("line {}: empty user name", i + 1));
            }
            map.insert(Box::from(&line[..colon]), Box::from(&line[colon + 1..]));
        }
        if map.is_empty() {
            return Err("no users".to_owned());
        }
        Ok(Users { map })
    }

    /// Reads and parses a users file.
    ///
    /// # Errors
    /// `<path>: <why>`.
    pub fn load(path: &Path) -> Result<Users, String> {
        let shown = path.display();
        let text =
            std::fs::read(path).map_err(|e| format!("{shown}: {}", smtp_net::strerror(&e)))?;
        Users::parse(&text).map_err(|e| format!("{shown}: {e}"))
    }

    /// Whether `user` exists with this password.
    pub fn check(&self, user: &[u8], password: &[u8]) -> bool {
        self.map.get(user).is_some_and(|p| **p == *password)
    }
}

/// A SASL mechanism the sink knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// RFC 4616.
    Plain,
    /// The de-facto LOGIN mechanism (draft-murchison-sasl-login).
    Login,
}

impl Mechanism {
    /// Looks a mechanism name up, ignoring case.
    pub fn parse(name: &[u8]) -> Option<Mechanism> {
        if name.eq_ignore_ascii_case(b"PLAIN") {
            Some(Mechanism::Plain)
        } else if name.eq_ignore_ascii_case(b"LOGIN") {
            Some(Mechanism::Login)
        } else {
            None
        }
    }

    /// The name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

/// An exchange that waits for the client's next line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// PLAIN without an initial response: the whole message comes next.
    Plain,
    /// LOGIN: the user name comes next.
    LoginUser,
    /// LOGIN: the password for this user comes next.
    LoginPassword(Bytes),
}

impl Pending {
    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> Mechanism {
        match self {
            Pending::Plain => Mechanism::Plain,
            Pending::LoginUser | Pending::LoginPassword(_) => Mechanism::Login,
        }
    }
}

/// What one step of an exchange brings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Send this `334` reply and wait for the next line.
    Challenge(&'static [u8], Pending),
    /// 235: this user is logged in.
    Success(Bytes),
    /// 535: unknown user, wrong password, or a PLAIN message that is not
    /// `[authzid] NUL authcid NUL passwd` (or names another authzid). The
    /// user, when one was named, is given for the log.
    Failed(Option<Bytes>),
    /// 501 5.5.2: the response is not base64.
    Malformed,
    /// 501 5.7.0: the client sent `*`.
    Aborted,
}

/// The challenge after `AUTH PLAIN` without an initial response: empty.
pub const PLAIN_CHALLENGE: &[u8] = b"334 \r\n";
/// LOGIN's first prompt, base64 of "Username:".
pub const LOGIN_USER: &[u8] = b"334 VXNlcm5hbWU6\r\n";
/// LOGIN's second prompt, base64 of "Password:".
pub const LOGIN_PASSWORD: &[u8] = b"334 UGFzc3dvcmQ6\r\n";

/// Decodes a response: `=` is the empty one (RFC 4954 §4).
fn decode(b64: &[u8]) -> Option<Vec<u8>> {
    if b64 == b"=" {
        return Some(Vec::new());
    }
    B64.decode(b64).ok()
}

/// Starts an exchange: the AUTH command's mechanism and initial response.
pub fn start(users: &Users, mechanism: Mechanism, initial: Option<&[u8]>) -> Outcome {
    match (mechanism, initial) {
        (Mechanism::Plain, None) => Outcome::Challenge(PLAIN_CHALLENGE, Pending::Plain),
        (Mechanism::Login, None) => Outcome::Challenge(LOGIN_USER, Pending::LoginUser),
        (_, Some(b"*")) => Outcome::Aborted,
        (Mechanism::Plain, Some(ir)) => match decode(ir) {
            Some(msg) => plain(users, &msg),
            None => Outcome::Malformed,
        },
        (Mechanism::Login, Some(ir)) => match decode(ir) {
            Some(user) => {
                Outcome::Challenge(LOGIN_PASSWORD, Pending::LoginPassword(Bytes::from(user)))
            }
            None => Outcome::Malformed,
        },
    }
}

/// Goes on with an exchange: `line` is the client's whole line (without
/// CR LF). It is never a command, whatever it looks like.
pub fn step(users: &Users, pending: Pending, line: &[u8]) -> Outcome {
    if line == b"*" {
        return Outcome::Aborted;
    }
    let Some(data) = decode(line) else {
        return Outcome::Malformed;
    };
    match pending {
        Pending::Plain => plain(users, &data),
        Pending::LoginUser => {
            Outcome::Challenge(LOGIN_PASSWORD, Pending::LoginPassword(Bytes::from(data)))
        }
        Pending::LoginPassword(user) => {
            if users.check(&user, &data) {
                Outcome::Success(user)
            } else {
                Outcome::Failed(Some(user))
            }
        }
    }
}

/// RFC 4616: `[authzid] NUL authcid NUL passwd`. An authorization identity
/// other than the user's own is refused (the sink has no proxy rights).
fn plain(users: &Users, msg: &[u8]) -> Outcome {
    let mut parts = msg.splitn(3, |b| *b == 0);
    let (Some(authzid), Some(user), Some(password)) = (parts.next(), parts.next(), parts.next())
    else {
        return Outcome::Failed(None);
    };
    let user = Bytes::copy_from_slice(user);
    if (!authzid.is_empty() && authzid != &user[..]) || !users.check(&user, password) {
        return Outcome::Failed(Some(user));
    }
    Outcome::Success(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Users {
        Users::parse(b"# test users\nalice:secret\r\n\nbob:pa:ss:word\ncarol:\n").expect("valid")
    }

    fn b64(s: &[u8]) -> Vec<u8> {
        B64.encode(s).into_bytes()
    }

    #[test]
    fn users_file_lines() {
        let u = users();
        assert!(u.check(b"alice", b"secret"));
        assert!(
            u.check(b"bob", b"pa:ss:word"),
            "the password keeps its colons"
        );
        assert!(u.check(b"carol", b""));
        assert!(!u.check(b"alice", b"secret\r"));
        assert!(!u.check(b"alice", b"Secret"));
        assert!(!u.check(b"Alice", b"secret"));
        assert!(!u.check(b"dave", b""));
        assert_eq!(format!("{u:?}"), "Users(3 entries)");
        for (text, err) in [
            (&b"alice:x\nnocolon\n"[..], "line 2: expected user:password"),
            (b":x\n", "line 1: empty user name"),
            (b"", "no users"),
            (b"# only\n\n", "no users"),
        ] {
            assert_eq!(Users::parse(text), Err(err.to_owned()));
        }
    }

    #[test]
    fn plain_and_login_outcomes() {
        let u = users();
        let ok = Outcome::Success(Bytes::from_static(b"alice"));
        let bad = Outcome::Failed(Some(Bytes::from_static(b"alice")));
        let login_pw = |user: &'static [u8]| {
            Outcome::Challenge(
                LOGIN_PASSWORD,
                Pending::LoginPassword(Bytes::from_static(user)),
            )
        };
        /// (mechanism, initial response, lines, final outcome)
        type Row = (Mechanism, Option<Vec<u8>>, Vec<Vec<u8>>, Outcome);
        let table: Vec<Row> = vec![
            // PLAIN with an initial response, with and without authzid.
            (
                Mechanism::Plain,
                Some(b64(b"\0alice\0secret")),
                vec![],
                ok.clone(),
            ),
            (
                Mechanism::Plain,
                Some(b64(b"alice\0alice\0secret")),
                vec![],
                ok.clone(),
            ),
            (
                Mechanism::Plain,
                Some(b64(b"\0alice\0wrong")),
                vec![],
                bad.clone(),
            ),
            (
                Mechanism::Plain,
                Some(b64(b"bob\0alice\0secret")),
                vec![],
                bad.clone(),
            ),
            (
                Mechanism::Plain,
                Some(b64(b"alice\0secret")),
                vec![],
                Outcome::Failed(None),
            ),
            (
                Mechanism::Plain,
                Some(b"=".to_vec()),
                vec![],
                Outcome::Failed(None),
            ),
            (
                Mechanism::Plain,
                Some(b"%%%".to_vec()),
                vec![],
                Outcome::Malformed,
            ),
            (
                Mechanism::Plain,
                Some(b"*".to_vec()),
                vec![],
                Outcome::Aborted,
            ),
            // Unpadded base64 is accepted.
            (
                Mechanism::Plain,
                Some(
                    b64(b"\0alice\0secret")
                        .into_iter()
                        .filter(|b| *b != b'=')
                        .collect(),
                ),
                vec![],
                ok.clone(),
            ),
            // PLAIN without one: the message comes as a line.
            (
                Mechanism::Plain,
                None,
                vec![b64(b"\0alice\0secret")],
                ok.clone(),
            ),
            (
                Mechanism::Plain,
                None,
                vec![b64(b"\0alice\0nope")],
                bad.clone(),
            ),
            (
                Mechanism::Plain,
                None,
                vec![b"*".to_vec()],
                Outcome::Aborted,
            ),
            (
                Mechanism::Plain,
                None,
                vec![b"QUIT".to_vec()],
                Outcome::Failed(None),
            ),
            (
                Mechanism::Plain,
                None,
                vec![b"MAIL FROM:<a>".to_vec()],
                Outcome::Malformed,
            ),
            // LOGIN without and with the user as initial response.
            (
                Mechanism::Login,
                None,
                vec![b64(b"alice"), b64(b"secret")],
                ok.clone(),
            ),
            (
                Mechanism::Login,
                None,
                vec![b64(b"alice"), b64(b"x")],
                bad.clone(),
            ),
            (
                Mechanism::Login,
                None,
                vec![b64(b"alice")],
                login_pw(b"alice"),
            ),
            (
                Mechanism::Login,
                None,
                vec![b64(b"alice"), b"*".to_vec()],
                Outcome::Aborted,
            ),
            (
                Mechanism::Login,
                None,
                vec![b"*".to_vec()],
                Outcome::Aborted,
            ),
            (
                Mechanism::Login,
                None,
                vec![b"a b".to_vec()],
                Outcome::Malformed,
            ),
            (
                Mechanism::Login,
                Some(b64(b"alice")),
                vec![b64(b"secret")],
                ok.clone(),
            ),
            (
                Mechanism::Login,
                Some(b64(b"alice")),
                vec![],
                login_pw(b"alice"),
            ),
            (
                Mechanism::Login,
                Some(b64(b"alice")),
                vec![b"!".to_vec()],
                Outcome::Malformed,
            ),
            (
                Mechanism::Login,
                Some(b"=".to_vec()),
                vec![b64(b"")],
                Outcome::Failed(Some(Bytes::new())),
            ),
            (
                Mechanism::Login,
                Some(b"*".to_vec()),
                vec![],
                Outcome::Aborted,
            ),
            (
                Mechanism::Login,
                None,
                vec![b64(b"carol"), b"=".to_vec()],
                Outcome::Success(Bytes::from_static(b"carol")),
            ),
        ];
        for (mech, ir, lines, want) in table {
            let mut got = start(&u, mech, ir.as_deref());
            for line in &lines {
                let Outcome::Challenge(_, pending) = got else {
                    panic!("{mech:?} {ir:?}: no challenge before {line:?}");
                };
                got = step(&u, pending, line);
            }
            assert_eq!(got, want, "{mech:?} {ir:?} {lines:?}");
        }
    }

    #[test]
    fn challenges_are_the_usual_prompts() {
        let u = users();
        assert_eq!(
            start(&u, Mechanism::Plain, None),
            Outcome::Challenge(b"334 \r\n", Pending::Plain)
        );
        assert_eq!(
            start(&u, Mechanism::Login, None),
            Outcome::Challenge(b"334 VXNlcm5hbWU6\r\n", Pending::LoginUser)
        );
        assert_eq!(B64.decode("VXNlcm5hbWU6").expect("b64"), b"Username:");
        assert_eq!(B64.decode("UGFzc3dvcmQ6").expect("b64"), b"Password:");
        assert_eq!(Mechanism::parse(b"pLaIn"), Some(Mechanism::Plain));
        assert_eq!(Mechanism::parse(b"login"), Some(Mechanism::Login));
        assert_eq!(Mechanism::parse(b"CRAM-MD5"), None);
    }
}
