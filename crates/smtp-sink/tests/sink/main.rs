//! Integration tests of the smtp-sink binary: exact replies for every
//! option, timing, dump files, interop with real peers, and a
//! differential comparison against Postfix's own smtp-sink.

mod common;
mod differential;
mod dump;
mod esmtp;
mod interop;
mod replies;
mod timing;
mod tls;
