complete -c smtp-probe -s r -l recipient -d 'Envelope recipient and To: address (required)' -r
complete -c smtp-probe -s s -l sender -d 'Envelope sender and From: address (default $USER@ this host\'s name)' -r
complete -c smtp-probe -s c -l count -d 'Messages to send to each server (ignored with -u)' -r
complete -c smtp-probe -l max-attempts -d 'With -u, give up after this many attempts per server (default: never)' -r
complete -c smtp-probe -s i -l interval -d 'Seconds between the end of one connection and the start of the next' -r
complete -c smtp-probe -s t -l timeout -d 'One limit for a whole session, from the connect to the reply after the message, in seconds' -r
complete -c smtp-probe -s k -l kilobytes -d 'Pad the body with about this many KiB of random printable text' -r
complete -c smtp-probe -s m -l message -d 'Tag at the start of the subject' -r
complete -c smtp-probe -s p -l port -d 'The port of servers given without one, and of MX hosts' -r
complete -c smtp-probe -s b -l bind -d 'Source address of outgoing connections' -r
complete -c smtp-probe -l helo -d 'The name sent with EHLO/HELO (default: this host\'s name)' -r
complete -c smtp-probe -l dns-server -d 'Ask this DNS server (ADDR:PORT) for MX records instead of the system\'s resolvers' -r
complete -c smtp-probe -l json -d 'Write the results as JSON to this file, or stdout with "-"' -r
complete -c smtp-probe -l chunking -d 'Send the message with BDAT when CHUNKING is offered, in chunks of BYTES (default: the whole message in one BDAT LAST)' -r
complete -c smtp-probe -l tls-ca -d 'Trust the PEM certificates in FILE instead of the system\'s' -r -F
complete -c smtp-probe -l tls-sni -d 'The server name to send (SNI) and verify (default: the host)' -r
complete -c smtp-probe -l tls-protocol -d 'Allow only this TLS version: tls1.2 or tls1.3' -r
complete -c smtp-probe -l auth -d 'Log in with AUTH PLAIN or LOGIN (default: the first one offered)' -r
complete -c smtp-probe -l auth-user -d 'The user name to log in with' -r
complete -c smtp-probe -l auth-password -d 'The password to log in with' -r
complete -c smtp-probe -l auth-users -d '`user:password` lines, used in turn by successive connections' -r -F
complete -c smtp-probe -s u -l until-success -d 'Loop over the servers that have not accepted a message yet until each has'
complete -c smtp-probe -s q -l quiet -d 'Attempt lines without phase times (the default when stdout is not a terminal)'
complete -c smtp-probe -s v -l verbose -d 'Print each attempt with its phase times (the default on a terminal)'
complete -c smtp-probe -l transcript -d 'Show each conversation as telnet would: `-> ` commands, `<- ` replies'
complete -c smtp-probe -l version -d 'Print the version (and the git commit it was built from)'
complete -c smtp-probe -l ehlo -d 'Greet with EHLO and read the server\'s capabilities (LMTP: LHLO)'
complete -c smtp-probe -l pipelining -d 'Send commands in groups when the server offers PIPELINING'
complete -c smtp-probe -l size -d 'Announce the message size (SIZE=n) when SIZE is offered'
complete -c smtp-probe -l 8bitmime -d 'Send BODY=8BITMIME when 8BITMIME is offered'
complete -c smtp-probe -l smtputf8 -d 'Send the SMTPUTF8 parameter when offered; allows UTF-8 in -f and -t'
complete -c smtp-probe -l starttls -d 'After EHLO, STARTTLS and a TLS handshake, then EHLO again'
complete -c smtp-probe -l tls-on-connect -d 'TLS from the first byte (SMTPS, port 465)'
complete -c smtp-probe -l tls-verify -d 'Verify the server\'s certificate chain and name'
complete -c smtp-probe -l no-tls-resume -d 'Full handshakes only: do not resume TLS sessions'
complete -c smtp-probe -l auth-plaintext -d 'Allow AUTH without TLS'
complete -c smtp-probe -s h -l help -d 'Print help'
