complete -c smtp-sink -s A -l abort-delay -d 'After 354, stop reading and after this many seconds send "550 This violates SMTP" and disconnect' -r
complete -c smtp-sink -s b -l soft-reply -d 'Soft error reply for -r (must start with a 4 and three digits)' -r
complete -c smtp-sink -s B -l hard-reply -d 'Hard error reply for -f (must start with a 5 and three digits)' -r
complete -c smtp-sink -s d -l dump -d 'Dump each transaction into its own file: strftime template plus 8 hex digits' -r
complete -c smtp-sink -s D -l dump-shared -d 'Append each transaction to a shared file named by this strftime template' -r
complete -c smtp-sink -s f -l hard-reject -d 'Reply to these commands with the hard error reply (implies -p)' -r
complete -c smtp-sink -s h -l hostname -d 'Host name in the greeting, the HELO/EHLO replies and Received headers' -r
complete -c smtp-sink -s H -l data-read-delay -d 'After 354, stop reading for this many seconds' -r
complete -c smtp-sink -s m -l max-clients -d 'Most client connections at once (default 256); others wait in the backlog' -r
complete -c smtp-sink -s M -l max-messages -d 'Exit after this many messages (after sending the last reply)' -r
complete -c smtp-sink -s n -l max-sessions -d 'Exit after this many sessions' -r
complete -c smtp-sink -s q -l drop -d 'Disconnect without a reply after these commands' -r
complete -c smtp-sink -s Q -l close -d 'Reply "421 4.0.0 Server closing connection" and disconnect after these commands' -r
complete -c smtp-sink -s r -l soft-reject -d 'Reply to these commands with the soft error reply (implies -p)' -r
complete -c smtp-sink -s R -l root-dir -d 'chroot into this directory (with -u) after binding' -r
complete -c smtp-sink -s s -l syslog -d 'Log these commands to syslog (facility mail)' -r
complete -c smtp-sink -s S -l start-string -d 'Text written (C escapes expanded) at the start of each dump record' -r
complete -c smtp-sink -s t -l timeout -d 'Idle (and write) timeout in seconds (default 100)' -r
complete -c smtp-sink -s T -l window-size -d 'SO_SNDBUF and SO_RCVBUF of the listening TCP socket' -r
complete -c smtp-sink -s u -l user -d 'Drop privileges to this user after binding (required as root)' -r
complete -c smtp-sink -s w -l data-delay -d 'Delay the reply to DATA by this many seconds (same as -W data:SECONDS)' -r
complete -c smtp-sink -s W -l delay -d 'Delay the reply to a command: command:delay[:odds]' -r
complete -c smtp-sink -l size -l max-message-size -d 'Announce "SIZE BYTES" and answer 552 to a MAIL SIZE= or a message larger than that (--max-message-size is the same option)' -r
complete -c smtp-sink -l max-rate -d 'Accept at most N messages (MAIL commands) per second (N/s), minute (N/m) or hour (N/h), with a burst of a tenth of a second\'s worth (at least 1); above it MAIL gets "451 4.7.1"' -r
complete -c smtp-sink -l max-rate-action -d 'What --max-rate refuses: "mail" (451 at MAIL, the default) or "connect" (421 to new connections, and to MAIL, then close)' -r
complete -c smtp-sink -l greylist -d 'Greylist: the first RCPT of a (client address, sender, recipient) gets "450 4.2.0"; a retry at least SECONDS later passes' -r
complete -c smtp-sink -l tarpit -d 'Wait this many milliseconds before every reply (reading nothing meanwhile, like -w)' -r
complete -c smtp-sink -l fault -d 'With probability P (0 to 1), answer CMD with REPLY instead ("4xx/5xx text", or "disconnect" to close without a reply). Repeatable' -r
complete -c smtp-sink -l seed -d 'Seed the --fault draws: session k (in accept order, from 0) draws from a stream made from the seed and k' -r
complete -c smtp-sink -l tls-cert -d 'PEM certificate chain (with --tls-key); without both, a self-signed certificate for the -h name is made at start' -r -F
complete -c smtp-sink -l tls-key -d 'PEM private key of --tls-cert' -r -F
complete -c smtp-sink -l auth-users -d 'Check AUTH PLAIN and LOGIN against these "user:password" lines instead of answering any AUTH with 250' -r -F
complete -c smtp-sink -l expect -d 'With --verify: exit with status 3 if fewer than N unique stamped messages arrived by the time the sink ends' -r
complete -c smtp-sink -l source-report -d 'With --verify: smtp-source\'s --json report of the run; at the end, print how many messages it saw accepted were lost on the way' -r -F
complete -c smtp-sink -l stats-json -d 'Write the counters as JSON to this file (via FILE.tmp and a rename) at start, on SIGUSR1 and at exit' -r -F
complete -c smtp-sink -l metrics -d 'Serve the counters in Prometheus\' text format at http://ADDR:PORT/metrics (e.g. 127.0.0.1:9100, [::1]:9100)' -r
complete -c smtp-sink -l progress -d 'Status line on stderr once a second: auto (a terminal, without -c and -v), always (plain lines on a pipe), never' -r
complete -c smtp-sink -l drain -d 'On SIGTERM (or SIGINT), stop accepting connections, let the transactions under way finish for up to SECONDS (421 to everything else), then exit. A second signal ends the wait' -r
complete -c smtp-sink -l threads -d 'Tokio worker threads: 0 = one thread that also accepts (the default), N > 0 = a multi-threaded runtime with N workers' -r
complete -c smtp-sink -s 4 -l ipv4-only -d 'Listen on IPv4 only'
complete -c smtp-sink -s 6 -l ipv6-only -d 'Listen on IPv6 only'
complete -c smtp-sink -s 8 -l no-8bitmime -d 'Do not announce 8BITMIME'
complete -c smtp-sink -s a -l no-auth -d 'Do not announce AUTH (it is still accepted)'
complete -c smtp-sink -s c -l count -d 'Print "sess=N quit=N mesg=N" counters (CR-terminated) to stdout'
complete -c smtp-sink -s C -l no-xclient -d 'Do not announce XCLIENT and disable the command'
complete -c smtp-sink -s e -l no-esmtp -d 'Do not announce ESMTP; EHLO is disabled'
complete -c smtp-sink -s E -l no-enhanced-status-codes -d 'Do not announce ENHANCEDSTATUSCODES'
complete -c smtp-sink -s F -l no-xforward -d 'Do not announce XFORWARD and disable the command'
complete -c smtp-sink -s L -l lmtp -d 'Speak LMTP (only LHLO is enabled)'
complete -c smtp-sink -s N -l no-dsn -d 'Do not announce DSN'
complete -c smtp-sink -s p -l no-pipelining -d 'Do not announce PIPELINING'
complete -c smtp-sink -s P -l pix -d 'Greet as "220 ********" like a CISCO PIX (implies -e)'
complete -c smtp-sink -s v -l verbose -d 'Log connections and command lines (repeat for more)'
complete -c smtp-sink -l chunking -d 'Announce CHUNKING and accept BDAT (RFC 3030); "bdat" may then be named in -f -q -Q -r -s -W'
complete -c smtp-sink -l smtputf8 -d 'Announce SMTPUTF8 (RFC 6531); the dump keeps UTF-8 addresses of a MAIL that carries SMTPUTF8'
complete -c smtp-sink -l starttls -d 'Announce STARTTLS and accept it (RFC 3207)'
complete -c smtp-sink -l tls-on-connect -d 'Speak TLS from the first byte (implicit TLS, RFC 8314)'
complete -c smtp-sink -l auth-plaintext -d 'With --auth-users: offer and accept AUTH without TLS too'
complete -c smtp-sink -l auth-required -d 'With --auth-users: answer MAIL before a successful AUTH with 530'
complete -c smtp-sink -l verify -d 'Check the X-Smtp-Stamp header of every message accepted (smtp-source --stamp): count unique, duplicate, corrupted and unstamped messages per run, and their transit time'
complete -c smtp-sink -l help -d 'Print help'
complete -c smtp-sink -l version -d 'Print the version (and the git commit it was built from)'
