# Nameless locations and inheritance: an `if` or `limit_except` block inside a websockify
# location keeps the target (as proxy_pass does), http- and server-level websockify_*
# directives reach locations and their `if` blocks, and a subrequest gets an error status,
# not a decline.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: `if` inside a location with a configured target
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        if ($arg_in_if) { add_header X-In-If yes always; }
    }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n", echo => 1);
for my $path ('/ws', '/ws?in_if=1') {
    my $c = ws_connect(path => $path);
    is $c->{status}, 101, "$T: $path: 101";
    is $c->{headers}{'x-in-if'}, ($path =~ /in_if/ ? 'yes' : undef),
        "$T: $path: the `if` block's configuration was used (or not)";
    is $c->read_data(12, 5), "RFB 003.008\n", "$T: $path: banner";
    $c->send(ws_frame(payload => "via $path"));
    is $c->read_data(length("via $path"), 5), "via $path", "$T: $path: echo";
}
is $t->connections, 2, "$T: both reached the target";
--- no_error_log
[error]



=== TEST 2: `if` inside a location with a per-request target: target and rules carried
--- config
    location /ws {
        set $vnc_addr $arg_host:$TEST_NGINX_RAND_PORT_1;
        websockify_pass $vnc_addr;
        websockify_allow 127.0.0.1;
        if ($arg_in_if) { add_header X-In-If yes always; }
    }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "one\n");
for my $q ('', '&in_if=1') {
    my $c = ws_connect(path => "/ws?host=127.0.0.1$q");
    is $c->{status}, 101, "$T: allowed target$q: 101";
    is $c->{headers}{'x-in-if'}, ($q ? 'yes' : undef), "$T: allowed target$q: the right block";
    is $c->read_data(4, 5), "one\n", "$T: allowed target$q: banner";
    my $d = http_raw(ws_request(path => "/ws?host=127.0.0.2$q"));
    is $d->{status}, 403, "$T: refused target$q: 403";
}
is $t->connections, 2, "$T: only the allowed requests connected";



=== TEST 3: a subrequest to a websockify location: 500 and one error line, no target
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
    location = /page {
        ssi on;
        ssi_types *;
        return 200 'before <!--# include virtual="/ws" --> after';
    }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "X");
my $c = http_raw("GET /page HTTP/1.0\r\nHost: localhost\r\n\r\n");
$c->wait_eof(5);
like $c->{buf}, qr/^before .*500 Internal Server Error.* after$/s,
    "$T: the subrequest's output is a 500 error page";
sleep 0.2;
is $t->connections, 0, "$T: target never connected";
my $log = error_log_text();
is scalar(() = $log =~ /\[error\]/g), 1, "$T: one error line" or diag $log;
like $log, qr/\[error\].*websockify: a WebSocket session cannot run in a subrequest/,
    "$T: it says why";



=== TEST 4: methods restricted by limit_except use its block: still the WebSocket handler
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        limit_except GET { allow 127.0.0.1; deny all; }
    }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "X");
my $c = ws_connect();
is $c->{status}, 101, "$T: GET: 101";
$c = http_raw(ws_request(method => 'POST'));
is $c->{status}, 400, "$T: POST: the handshake check answers 400";
like error_log_text(), qr/\[info\].*websockify: bad handshake/, "$T: with its info line";
--- no_error_log
[error]



=== TEST 5: http- and server-level directives reach locations and their `if` blocks
--- http_config
    websockify_buffer_size 256;
    websockify_connect_timeout 1s;
    websockify_ping_interval off;
    websockify_allow 127.0.0.1;
--- config
    websockify_read_timeout 1s;
    websockify_send_timeout 1s;
    websockify_allow_origin https://good.example;
    location /big {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        if ($arg_in_if) { add_header X-In-If yes always; }
    }
    location /silent {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        if ($arg_in_if) { add_header X-In-If yes always; }
    }
    location /dead {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_3;
        if ($arg_in_if) { add_header X-In-If yes always; }
    }
    location /stuck {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_4;
        if ($arg_in_if) { add_header X-In-If yes always; }
    }
    location /var {
        set $vnc_addr $arg_host:$TEST_NGINX_RAND_PORT_1;
        websockify_pass $vnc_addr;
        if ($arg_in_if) { add_header X-In-If yes always; }
    }
--- ws_test
my $data = prng_bytes('inherit', 4000);
my $big = mock_target(port => rand_port(1), send_data => $data);
my $silent = mock_target(port => rand_port(2));
my $dead = mock_target(port => rand_port(3), backlog => 1, no_accept => 1);
my $fill = fill_backlog(rand_port(3));
my $stuck = mock_target(port => rand_port(4), read_delay => 60);
for my $q ('', 'in_if=1') {
    my $where = $q ? 'in `if`' : 'in the location';
    my $in_if = $q ? 'yes' : undef;

    # websockify_buffer_size 256 (http): no frame to the client carries more than 256 bytes
    my $c = ws_connect(path => "/big?$q");
    is $c->{status}, 101, "$T: $where: /big: 101";
    is $c->{headers}{'x-in-if'}, $in_if, "$T: $where: /big: the right block";
    my ($got, $max) = ('', 0);
    while (length $got < length $data) {
        my $f = $c->read_frame(5) or last;
        next if $f->{opcode} >= 8;
        $got .= $f->{payload};
        $max = length $f->{payload} if length $f->{payload} > $max;
    }
    ok $got eq $data, "$T: $where: /big: every byte";
    ok $max > 0 && $max <= 256, "$T: $where: frames of at most 256 bytes (largest: $max)";

    # websockify_read_timeout 1s (server), heartbeat off (http): idle end with 1001
    $c = ws_connect(path => "/silent?$q");
    is $c->{status}, 101, "$T: $where: /silent: 101";
    my $t0 = time;
    my $f = $c->read_until_opcode(8, 8);
    my $dt = time - $t0;
    is $f && $f->{code}, 1001, "$T: $where: /silent: close 1001";
    ok $dt < 5, "$T: $where: /silent: after the 1s read timeout (${dt}s)";

    # websockify_connect_timeout 1s (http): 504
    $t0 = time;
    $c = http_raw(ws_request(path => "/dead?$q"), timeout => 10);
    $dt = time - $t0;
    is $c->{status}, 504, "$T: $where: /dead: 504";
    is $c->{headers}{'x-in-if'}, $in_if, "$T: $where: /dead: the right block";
    ok $dt < 5, "$T: $where: /dead: after the 1s connect timeout (${dt}s)";

    # websockify_send_timeout 1s (server): a target that never reads ends the session
    $c = ws_connect(path => "/stuck?$q");
    is $c->{status}, 101, "$T: $where: /stuck: 101";
    my $chunk = ws_frame(payload => prng_bytes('stuck', 1 << 20));
    $t0 = time;
    eval { $c->send($chunk, 3) for 1 .. 12; 1 } or note "client write stopped: $@";
    ok $c->wait_eof(8), "$T: $where: /stuck: ended by the send timeout";

    # websockify_allow (http) and websockify_allow_origin (server)
    $c = ws_connect(path => "/var?host=127.0.0.1&$q", headers => { Origin => 'https://good.example' });
    is $c->{status}, 101, "$T: $where: allowed target, allowed origin: 101";
    $c = http_raw(ws_request(path => "/var?host=127.0.0.2&$q"));
    is $c->{status}, 403, "$T: $where: target outside websockify_allow: 403";
    is $c->{headers}{'x-in-if'}, $in_if, "$T: $where: /var: the right block";
    $c = http_raw(ws_request(path => "/var?host=127.0.0.1&$q",
        headers => { Origin => 'https://evil.example' }));
    is $c->{status}, 403, "$T: $where: origin outside websockify_allow_origin: 403";
}
--- ws_timeout: 90
