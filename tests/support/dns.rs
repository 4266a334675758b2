//! A fake DNS server for the tests: a fixed zone, answered over UDP on a
//! loopback port, from a background thread that stops on drop.
//!
//! Unknown names answer NXDOMAIN; a known name without a record of the
//! asked type answers NOERROR with no answer. Queries are parsed and
//! answers built with hickory-proto. It only answers what it is sent,
//! on 127.0.0.1, and its answers are small (never truncated), so it has
//! no TCP side.
//!
//! Shared by the workspace-level tests (`support::dns`) and by
//! crates/smtp-source/tests/mx.rs (through `#[path]`).
#![allow(dead_code, unreachable_pub)]

use std::{
    io::ErrorKind,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode, ResponseCode},
    rr::{
        rdata::{A, AAAA, MX},
        Name, RData, Record as ResourceRecord, RecordType,
    },
};

/// Time-to-live of every record served.
const TTL: u32 = 60;

/// How often the server thread looks at its stop flag.
const POLL: Duration = Duration::from_millis(50);

/// One record of the zone, for the name it is listed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// A mail exchanger: preference and host name ("." for a null MX,
    /// RFC 7505; a trailing dot is optional).
    Mx(u16, &'static str),
}

/// A running fake DNS server; stops when dropped.
#[derive(Debug)]
pub struct DnsServer {
    /// Where it listens (UDP, 127.0.0.1, an ephemeral port).
    pub addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    /// Starts a server answering for `zone`: (owner name, record) pairs,
    /// served in the order given (so records of one name and type keep
    /// it). Names are case-insensitive; a trailing dot is optional.
    ///
    /// # Panics
    /// On a name that is not a valid domain name, or when no loopback UDP
    /// port can be had.
    pub fn start(zone: &[(&str, Record)]) -> Self {
        let zone: Vec<ResourceRecord> = zone
            .iter()
            .map(|(owner, record)| {
                let data = match record {
                    Record::A(ip) => RData::A(A(*ip)),
                    Record::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
                    Record::Mx(preference, exchange) => {
                        RData::MX(MX::new(*preference, fqdn(exchange)))
                    }
                };
                ResourceRecord::from_rdata(fqdn(owner), TTL, data)
            })
            .collect();
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback UDP port");
        socket
            .set_read_timeout(Some(POLL))
            .expect("set the read timeout");
        let addr = socket.local_addr().expect("local address");
        let queries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = thread::Builder::new()
            .name("fake-dns".to_owned())
            .spawn({
                let (queries, stop) = (Arc::clone(&queries), Arc::clone(&stop));
                move || serve(&socket, &zone, &queries, &stop)
            })
            .expect("spawn the DNS server thread");
        Self {
            addr,
            queries,
            stop,
            thread: Some(thread),
        }
    }

    /// How many well-formed queries it has answered so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `name` as a fully qualified name.
fn fqdn(name: &str) -> Name {
    let mut parsed =
        Name::from_ascii(name).unwrap_or_else(|e| panic!("invalid DNS name {name:?}: {e}"));
    parsed.set_fqdn(true);
    parsed
}

/// Answers datagrams until `stop` is set or the socket fails.
fn serve(socket: &UdpSocket, zone: &[ResourceRecord], queries: &AtomicUsize, stop: &AtomicBool) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        let (len, peer) = match socket.recv_from(&mut buf) {
            Ok(received) => received,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        // Anything that is not a query is dropped unanswered.
        let Some(answer) = Message::from_vec(&buf[..len])
            .ok()
            .and_then(|request| answer(&request, zone))
        else {
            continue;
        };
        queries.fetch_add(1, Ordering::SeqCst);
        if let Ok(bytes) = answer.to_vec() {
            let _ = socket.send_to(&bytes, peer);
        }
    }
}

/// The answer to `request`, or None for what is not a one-question query.
fn answer(request: &Message, zone: &[ResourceRecord]) -> Option<Message> {
    if request.message_type != MessageType::Query {
        return None;
    }
    let mut response = Message::response(request.id, request.op_code);
    response.metadata.recursion_desired = request.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.authoritative = true;
    if request.edns.is_some() {
        // RFC 6891 §6.1.1: an OPT in the query asks for one in the answer.
        response.set_edns(Edns::new());
    }
    let [query] = request.queries.as_slice() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return Some(response);
    };
    response.add_query(query.clone());
    if request.op_code != OpCode::Query {
        response.metadata.response_code = ResponseCode::NotImp;
        return Some(response);
    }
    let mut owned = zone
        .iter()
        .filter(|record| record.name.eq_ignore_root(&query.name))
        .peekable();
    if owned.peek().is_none() {
        response.metadata.response_code = ResponseCode::NXDomain;
        return Some(response);
    }
    response.add_answers(
        owned
            .filter(|record| {
                query.query_type == RecordType::ANY || record.record_type() == query.query_type
            })
            .map(|record| {
                let mut record = record.clone();
                // The name as asked, so its case is the asker's.
                record.name = query.name.clone();
                record
            }),
    );
    Some(response)
}
