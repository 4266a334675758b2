//! A sans-IO SMTP/LMTP codec: the protocol core of smtp-source and
//! smtp-sink.
//!
//! # The sans-IO contract
//! This crate turns bytes into values and values into bytes. It never
//! touches a socket, a task or a clock: timeouts and delays belong to the
//! runtime that drives it, and time, where a format needs it, is passed in.
//! That keeps every parser deterministic and testable without a network.
//!
//! Every parser has one shape:
//!
//! ```text
//! fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<T>, ParseError>
//! ```
//!
//! * `Ok(Some(item))` consumed exactly the bytes of one item;
//! * `Ok(None)` means "need more bytes";
//! * `Err(_)` means the bytes can never be valid (see [`ParseError`]).
//!
//! Parsed values are [`Bytes`](bytes::Bytes) slices of the input, not
//! copies, and results never depend on how the input was split into reads.
//!
//! # Map
//! * [`CommandParser`] / [`Command`] / [`Verb`]: what a server reads
//!   (RFC 5321 §4.1); [`Request`]: what a client sends.
//! * [`ReplyParser`] / [`Reply`]: what a client reads (RFC 5321 §4.2),
//!   [`encode_reply`] for a server.
//! * [`Capabilities`]: the EHLO keyword list, both ways.
//! * [`DataDecoder`] / [`DotStuffer`]: the DATA phase (RFC 5321 §4.5.2).
//! * [`message`]: the messages Postfix's smtp-source generates.
//! * [`time`]: strftime(3) and Postfix's RFC 2822 date.
//! * [`postfix`]: command-line conventions both programs share (`atoi`).
//! * [`stamp`]: the `X-Smtp-Stamp` header that lets a sink check a relayed
//!   message against what the source sent.
//!
//! ```
//! use bytes::BytesMut;
//! use smtp_proto::{CommandParser, Verb};
//!
//! let mut parser = CommandParser::default();
//! let mut buf = BytesMut::from(&b"MAIL FROM:<a@example.org> SIZE=10\r\nRC"[..]);
//! let cmd = parser.parse(&mut buf).unwrap().unwrap();
//! assert_eq!(cmd.verb, Verb::Mail);
//! assert_eq!(&cmd.mail_from().unwrap().path[..], b"a@example.org");
//! assert!(parser.parse(&mut buf).unwrap().is_none()); // "RC" needs more
//! ```

#![warn(missing_docs)]

pub mod client;
mod command;
mod command_parser;
mod data;
mod decimal;
mod ehlo;
mod error;
mod limits;
mod line;
pub mod message;
pub mod postfix;
mod reply;
mod reply_parser;
pub mod stamp;
pub mod time;
mod verb;

pub use command::{AuthArgs, BdatArgs, Command, Params, PathArgs, Request};
pub use command_parser::CommandParser;
pub use data::{stuff, DataDecoder, DataEvent, DataMode, DotStuffer};
pub use decimal::itoa;
pub use ehlo::{Capabilities, Extensions};
pub use error::ParseError;
pub use limits::Limits;
pub use reply::{encode_reply, EnhancedCode, Reply, ReplyCode, Severity};
pub use reply_parser::ReplyParser;
pub use verb::{UnknownVerb, Verb};
