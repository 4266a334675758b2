complete -c smtp-source -s C -d 'Connect attempts allowed per session (default 1)' -r
complete -c smtp-source -s f -d 'Envelope sender and From: address (default foo@myhostname)' -r
complete -c smtp-source -s F -d 'Send this preformatted message (headers and body) instead' -r -F
complete -c smtp-source -s l -d 'Body length in bytes (default: four "La de da" lines)' -r
complete -c smtp-source -s m -d 'Total number of messages, shared by all sessions (default 1)' -r
complete -c smtp-source -s M -d 'Host name for HELO/LHLO, default addresses and Message-Id' -r
complete -c smtp-source -s r -d 'Recipients per message (default 1); any -r also numbers them' -r
complete -c smtp-source -s R -d 'Random delay of 0..=interval seconds between messages' -r
complete -c smtp-source -s s -d 'Parallel sessions (default 1)' -r
complete -c smtp-source -s S -d 'Subject: header text' -r
complete -c smtp-source -s t -d 'Envelope recipient and To: address (default foo@myhostname)' -r
complete -c smtp-source -s T -d 'SO_SNDBUF and SO_RCVBUF of every client socket' -r
complete -c smtp-source -s w -d 'Fixed delay in seconds between messages' -r
complete -c smtp-source -l timeout -d 'Read/write timeout in seconds (Postfix: 300, fixed)' -r
complete -c smtp-source -l session-timeout -d 'One limit for a whole connection, connect to close, in seconds (fractions allowed)' -r
complete -c smtp-source -l reply-timeout -d 'One limit for each reply, from sending its command (or connecting, for the greeting) to its last line, in seconds (fractions allowed); --timeout still bounds each read' -r
complete -c smtp-source -l bind -d 'Local source addresses for the TCP connections, taken in turn by each new connection: ADDR[,ADDR...], where an item may be a range FIRST-LAST (127.0.0.2-127.0.0.20, fd00::1-fd00::8)' -r
complete -c smtp-source -l json -d 'Write the report as JSON to this file, or stdout with "-"' -r
complete -c smtp-source -l html -d 'Write the report as one self-contained HTML page with latency and throughput charts to this file, or stdout with "-"' -r
complete -c smtp-source -l chunking -d 'Send the message with BDAT when CHUNKING is offered, in chunks of BYTES (default: the whole message in one BDAT LAST)' -r
complete -c smtp-source -l tls-ca -d 'Trust the PEM certificates in FILE instead of the system\'s' -r -F
complete -c smtp-source -l tls-sni -d 'The server name to send (SNI) and verify (default: the host)' -r
complete -c smtp-source -l tls-protocol -d 'Allow only this TLS version: tls1.2 or tls1.3' -r
complete -c smtp-source -l auth -d 'Log in with AUTH PLAIN or LOGIN (default: the first one offered)' -r
complete -c smtp-source -l auth-user -d 'The user name to log in with' -r
complete -c smtp-source -l auth-password -d 'The password to log in with' -r
complete -c smtp-source -l auth-users -d '`user:password` lines, used in turn by successive connections' -r -F
complete -c smtp-source -l threads -d 'Runtime threads: 0 runs everything on the main thread' -r
complete -c smtp-source -l progress -d 'Live progress line on stderr: auto (a terminal, without -c, -v, --transcript or --json -), always or never' -r
complete -c smtp-source -l duration -d 'End the run after TIME (30s, 5m, 1h30m); with -m, whichever comes first' -r
complete -c smtp-source -l rate -d 'Open model: start R messages per second on a fixed schedule, and report latency also from each message\'s intended start' -r
complete -c smtp-source -l warmup -d 'Record nothing during the first TIME of the run' -r
complete -c smtp-source -l threshold -d 'A pass/fail condition checked at the end, e.g. rcpt.p99<50ms, accepted>=99.9%, rate>=5000, failed==0 (repeatable)' -r
complete -c smtp-source -l run-id -d 'The run\'s id in stamps and in the report (1 to 32 of A-Z a-z 0-9 _ -; default: random)' -r
complete -c smtp-source -l segment -d 'Run segment I of N of the run: its share of -m, -s and --rate (auto/N: I from JOB_COMPLETION_INDEX, as a Kubernetes Indexed Job sets it). Give all segments the same --run-id' -r
complete -c smtp-source -l merge-reports -d 'Merge the JSON reports of a run\'s segments (files, or - for JSON lines on stdin) and print what --summary and --json ask for, instead of running' -r
complete -c smtp-source -s 4 -d 'Resolve host names to IPv4 addresses only'
complete -c smtp-source -s 6 -d 'Resolve host names to IPv6 addresses only'
complete -c smtp-source -s A -d 'Don\'t abort on a non-positive reply: warn and recover'
complete -c smtp-source -s c -d 'Print a running count of messages sent on stdout'
complete -c smtp-source -s d -d 'Keep the connection open and send the next message on it'
complete -c smtp-source -s L -d 'Speak LMTP instead of SMTP'
complete -c smtp-source -s N -d 'Number the recipients: LOCALn@DOMAIN, n counting from 0'
complete -c smtp-source -s o -d 'Old mode: no HELO/LHLO and no generated headers'
complete -c smtp-source -s v -d 'Show each command and reply on stderr (repeatable)'
complete -c smtp-source -l transcript -d 'Show the conversation on stderr as telnet or swaks does: "-> " for commands, "<- " for replies, "[N] " per session with -s > 1'
complete -c smtp-source -l summary -d 'Print a one-paragraph summary on stderr at the end'
complete -c smtp-source -l ehlo -d 'Greet with EHLO and read the server\'s capabilities (LMTP: LHLO)'
complete -c smtp-source -l pipelining -d 'Send commands in groups when the server offers PIPELINING'
complete -c smtp-source -l size -d 'Announce the message size (SIZE=n) when SIZE is offered'
complete -c smtp-source -l 8bitmime -d 'Send BODY=8BITMIME when 8BITMIME is offered'
complete -c smtp-source -l smtputf8 -d 'Send the SMTPUTF8 parameter when offered; allows UTF-8 in -f and -t'
complete -c smtp-source -l starttls -d 'After EHLO, STARTTLS and a TLS handshake, then EHLO again'
complete -c smtp-source -l tls-on-connect -d 'TLS from the first byte (SMTPS, port 465)'
complete -c smtp-source -l tls-verify -d 'Verify the server\'s certificate chain and name'
complete -c smtp-source -l no-tls-resume -d 'Full handshakes only: do not resume TLS sessions'
complete -c smtp-source -l auth-plaintext -d 'Allow AUTH without TLS'
complete -c smtp-source -l stamp -d 'Add an X-Smtp-Stamp header to every message (run id, sequence number, send time, body length and digest) for `smtp-sink --verify`'
complete -c smtp-source -l partial -d 'With --merge-reports: merge even when segments are missing or repeated'
complete -c smtp-source -l help -d 'Print help'
complete -c smtp-source -l version -d 'Print the version (and the git commit it was built from)'
