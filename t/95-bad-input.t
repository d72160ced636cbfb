# Malformed input, class by class: each gets its defined answer (an HTTP status for the
# handshake, a close code for frames) and an error_log line at info level, never at
# error/alert, and the target sees none of the bad bytes.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: handshake rejects: answer, info-level log line, target never connected
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "X");
my @cases = (
    ['missing key',      400, 'missing or repeated Sec-WebSocket-Key',
        ws_request(headers => { 'Sec-WebSocket-Key' => undef })],
    ['duplicate key',    400, 'missing or repeated Sec-WebSocket-Key',
        ws_request() =~ s/\r\n\r\n$/\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n\r\n/r],
    ['short key',        400, 'Sec-WebSocket-Key is not 16 bytes of base64',
        ws_request(key => 'AAAAAAAAAAAAAAAAAAAA')],
    ['version 8',        426, 'unsupported Sec-WebSocket-Version',
        ws_request(headers => { 'Sec-WebSocket-Version' => '8' })],
    ['no version',       400, 'missing Sec-WebSocket-Version',
        ws_request(headers => { 'Sec-WebSocket-Version' => undef })],
    ['POST',             400, 'method is not GET',
        ws_request(method => 'POST', headers => { 'Content-Length' => 0 })],
    ['HTTP/1.0',         400, 'WebSocket needs HTTP/1.1',
        ws_request(version => 'HTTP/1.0')],
    ['no Upgrade',       400, 'missing "Upgrade: websocket"',
        ws_request(headers => { Upgrade => undef })],
    ['body with length', 400, 'request body on a WebSocket handshake',
        ws_request(headers => { 'Content-Length' => 5 }) . 'hello'],
    ['chunked body',     400, 'request body on a WebSocket handshake',
        ws_request(headers => { 'Transfer-Encoding' => 'chunked' }) . "5\r\nhello\r\n0\r\n\r\n"],
);
for my $case (@cases) {
    my ($what, $status, $reason, $req) = @$case;
    my $c = http_raw($req);
    is $c->{status}, $status, "$T: $what -> $status";
    if ($status == 426) {
        is $c->{headers}{'sec-websocket-version'}, '13', "$T: $what: Sec-WebSocket-Version: 13";
    }
    like error_log_text(), log_line(info => "websockify: bad handshake: $reason"),
        "$T: $what: info line";
}
sleep 0.3;
is $t->connections, 0, "$T: target never connected";
--- no_error_log
[error]
[crit]
[alert]
[emerg]



=== TEST 2: oversized request headers -> nginx's own 400 (494 inside), module not involved
--- config
    large_client_header_buffers 4 1k;
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "X");
my $c = http_raw(ws_request(headers => { 'X-Big' => 'a' x 2000 }));
is $c->{status}, 400, "$T: one header line too long -> 400";
$c = http_raw(ws_request(headers => { map { ("X-H$_" => 'b' x 900) } 1 .. 8 }));
is $c->{status}, 400, "$T: too many large headers -> 400";
like error_log_text(), qr/\[info\] [^\n]*client sent too long header line/, "$T: nginx info line";
sleep 0.3;
is $t->connections, 0, "$T: target never connected";
--- no_error_log
[error]
[alert]



=== TEST 3: frame-level protocol errors -> close code, info line, nothing relayed
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
    location /b64 { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), echo => 1);
my $key = "\x11\x22\x33\x44";
my @cases = (
    ['unmasked',            1002, 'client frame is not masked',
        ws_frame(payload => 'abc', mask => 0)],
    ['RSV1',                1002, 'client frame has reserved bits set',
        ws_frame(payload => 'abc', rsv => 4)],
    ['RSV3',                1002, 'client frame has reserved bits set',
        ws_frame(payload => 'abc', rsv => 1)],
    ['opcode 3',            1002, 'client frame has unknown opcode 3',
        ws_frame(opcode => 3, payload => 'abc')],
    ['opcode 11',           1002, 'client frame has unknown opcode 11',
        ws_frame(opcode => 11, payload => '')],
    ['64-bit length MSB',   1002, 'client frame length has the most significant bit set',
        "\x82\xff\x80\0\0\0\0\0\0\0" . $key],
    ['fragmented ping',     1002, 'client sent a fragmented control frame',
        ws_frame(opcode => 9, fin => 0, payload => 'p')],
    ['126-byte ping',       1002, 'client control frame is longer than 125 bytes',
        ws_frame(opcode => 9, payload => 'p' x 126)],
    ['continuation first',  1002, 'client continuation frame without a message',
        ws_frame(opcode => 0, payload => 'x')],
    ['new message in fragmented one', 1002, 'client started a message inside a fragmented one',
        ws_frame(fin => 0, payload => '') . ws_frame(payload => '')],
    ['close code 1005',     1002, 'client close frame has an invalid status code',
        ws_close_frame(1005)],
    ['close code 999',      1002, 'client close frame has an invalid status code',
        ws_close_frame(999)],
    ['1-byte close body',   1002, 'client close frame has an invalid status code',
        ws_frame(opcode => 8, payload => "\x03")],
    ['close reason not UTF-8', 1007, 'client close reason is not valid UTF-8',
        ws_close_frame(1000, "\xff\xfe")],
    ['bad base64',          1007, 'client sent invalid base64',
        ws_frame(opcode => 1, payload => 'QU!D'), 'base64'],
    ['unpadded base64',     1007, 'client sent invalid base64',
        ws_frame(opcode => 1, payload => 'QUJDR'), 'base64'],
    ['binary in base64',    1003, 'client sent a binary frame in base64 mode',
        ws_frame(opcode => 2, payload => 'QUJD'), 'base64'],
);
my $n = 0;
for my $case (@cases) {
    my ($what, $code, $reason, $bytes, $proto) = @$case;
    my $c = ws_connect(defined $proto ? (protocol => $proto) : ());
    is $c->{status}, 101, "$T: $what: 101";
    $n++;
    $t->wait_connections($n, 5);
    $c->send($bytes);
    close_ok($c, $code, $what, 5);
    like error_log_text(), log_line(info => "websockify: closing with $code: $reason"),
        "$T: $what: info line";
}
ok wait_until(sub { $t->eof($n) }, 5), "$T: target connections closed";
for my $i (1 .. $n) {
    my $what = $cases[$i - 1][0];
    # Base64 is decoded per quantum as it streams in: the complete quanta of an invalid
    # message ("QUJD" of "QUJDR") have reached the target before the message end shows
    # the error. Everything else is rejected before any byte is relayed.
    my $want = $what eq 'unpadded base64' ? 'ABC' : '';
    is $t->data($i), $want, "$T: $what: relayed " . length($want) . " bytes";
}
--- no_error_log
[error]
[crit]
[alert]
--- ws_timeout: 120



=== TEST 4: garbage as the first frame: a defined close code, never a crash
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
for my $seed (1 .. 12) {
    my $junk = prng_bytes("junk$seed", 64);
    # A masked-looking header with bad bits is the common case; force a few shapes.
    substr($junk, 0, 1) = chr(ord(substr($junk, 0, 1)) | 0x40) if $seed % 3 == 0;
    substr($junk, 1, 1) = chr(ord(substr($junk, 1, 1)) & 0x7f) if $seed % 3 == 1;
    # RFC 6455 5.2: a header with reserved bits, no mask, or an unknown opcode fails
    # the connection with 1002, whichever of them a decoder checks first.
    my ($b0, $b1) = unpack 'CC', $junk;
    my $bad = ($b0 & 0x70) || !($b1 & 0x80) || grep { ($b0 & 0xf) == $_ } 3 .. 7, 11 .. 15;
    ok $bad, "$T: seed $seed: the first header is invalid (the expected answer is 1002)";
    my $c = ws_connect();
    is $c->{status}, 101, "$T: seed $seed: 101";
    $c->send($junk);
    close_ok($c, 1002, "seed $seed", 5);
}
is $t->data($_), '', "$T: connection $_: nothing relayed" for 1 .. 12;
# nginx still serves.
my $c = ws_connect();
is $c->{status}, 101, "$T: still accepting";
--- no_error_log
[error]
[alert]
[crit]



=== TEST 5: frames pipelined in the same packet as the handshake reach the target
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), echo => 1);
my $big = prng_bytes('pipelined', 3000);
my $extra = ws_frame(payload => 'first') . ws_frame(opcode => 9, payload => 'pp')
    . ws_frame(fin => 0, opcode => 1, payload => '-second') . ws_frame(opcode => 0, payload => $big);
my $c = ws_connect(extra => $extra);
is $c->{status}, 101, "$T: 101";
my $want = 'first-second' . $big;
is $t->wait_data(length $want, 5), $want, "$T: target got the pipelined payload";
my $f = $c->read_until_opcode(10, 5);
is $f && $f->{payload}, 'pp', "$T: pong for the pipelined ping";
is $c->read_data(length($want) - length($c->{skipped_data} // ''), 5), substr($want, length($c->{skipped_data} // '')),
    "$T: echoed back";
--- no_error_log
[error]
[alert]



=== TEST 6: a pipelined bad frame right after the handshake -> 101 then close 1002
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), echo => 1);
my $c = ws_connect(extra => ws_frame(payload => 'ok') . ws_frame(payload => 'bad', mask => 0));
is $c->{status}, 101, "$T: 101";
close_ok($c, 1002, 'pipelined unmasked frame', 5);
is $t->wait_data(2, 3), 'ok', "$T: the good frame before it was relayed";
--- error_log eval
WsTest::log_line(info => 'websockify: closing with 1002: client frame is not masked')
--- no_error_log
[error]
[alert]
