//! `hold`: opens `--count` idle sessions (greeting read, EHLO answered) to a
//! sink and keeps them open until stdin closes, for the connection-scale
//! test. Each process holds at most what its open-file limit allows; the
//! harness spreads larger counts over several processes and source addresses.

use std::{
    io::{BufRead, Write},
    net::{SocketAddr, TcpStream},
};

use crate::{args::Args, stream::IO_TIMEOUT};

pub(crate) fn run(args: &Args) -> Result<(), String> {
    let target: SocketAddr = args
        .endpoint()
        .and_then(|ep| match ep {
            crate::stream::Endpoint::Tcp(a) => Ok(a),
            crate::stream::Endpoint::Unix(_) => Err("hold supports --tcp only".to_owned()),
        })?
        .parse()
        .map_err(|e| format!("--tcp: {e}"))?;
    let bind: Option<SocketAddr> = args
        .bind
        .as_deref()
        .map(|ip| format!("{ip}:0").parse())
        .transpose()
        .map_err(|e| format!("--bind: {e}"))?;
    let mut held = Vec::with_capacity(args.count);
    let mut buf = Vec::with_capacity(512);
    for i in 0..args.count {
        let mut stream = connect(target, bind).map_err(|e| format!("connect #{i}: {e}"))?;
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .map_err(|e| format!("timeout: {e}"))?;
        read_reply(&mut stream, &mut buf).map_err(|e| format!("greeting #{i}: {e}"))?;
        stream
            .write_all(b"EHLO hold.example\r\n")
            .map_err(|e| format!("EHLO #{i}: {e}"))?;
        read_reply(&mut stream, &mut buf).map_err(|e| format!("EHLO reply #{i}: {e}"))?;
        held.push(stream);
    }
    println!("ready {}", held.len());
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    // Hold until the harness closes our stdin (or kills us).
    let mut line = String::new();
    while std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_or(0, |n| n)
        > 0
    {
        line.clear();
    }
    drop(held);
    Ok(())
}

fn connect(target: SocketAddr, bind: Option<SocketAddr>) -> std::io::Result<TcpStream> {
    let Some(local) = bind else {
        return TcpStream::connect(target);
    };
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(target),
        socket2::Type::STREAM,
        None,
    )?;
    sock.bind(&local.into())?;
    sock.connect(&target.into())?;
    Ok(sock.into())
}

/// Reads one whole reply, multi-line included: done when the last line has a
/// space (or nothing) after its code.
pub(crate) fn read_reply(
    stream: &mut impl std::io::Read,
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    buf.clear();
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.ends_with(b"\r\n") {
            let body = &buf[..buf.len() - 2];
            let start = memchr::memrchr(b'\n', body).map_or(0, |i| i + 1);
            if body.get(start + 3).is_none_or(|&b| b == b' ') {
                return Ok(());
            }
        }
    }
}
