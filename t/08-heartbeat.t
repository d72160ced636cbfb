# websockify_ping_interval: heartbeat pings keep a quiet console alive while the browser
# answers, and do not keep a vanished client's session open.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: pings arrive on a silent session; answering them outlives the idle timeout
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_read_timeout 2s;
        websockify_ping_interval 500ms;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), echo => 1);
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
my $pings = 0;
my $until = time + 5;
while (time < $until) {
    my $f = $c->read_frame($until - time) or last;
    last if $f->{opcode} == 8;
    next unless $f->{opcode} == 9;
    $pings++;
    $c->send(ws_frame(opcode => 10, payload => $f->{payload}));
}
cmp_ok $pings, '>=', 6, "$T: a ping about every 500 ms ($pings in 5 s)";
$c->send(ws_frame(payload => 'still here'));
is $c->read_data(10, 3), 'still here', "$T: session alive after 2.5x the idle timeout";
is $t->data, 'still here', "$T: pongs never reach the target";

=== TEST 2: a client that does not answer still times out (close 1001)
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_read_timeout 1500ms;
        websockify_ping_interval 400ms;
    }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
close_ok($c, 1001, 'idle despite the pings', 5);
ok scalar(grep { $_->{opcode} == 9 } @{ $c->{control} // [] }) >= 2, "$T: pings were sent";
--- error_log eval
WsTest::log_line(info =>
    'websockify: session timed out after 1500 ms without data, closing with 1001')

=== TEST 3: off sends none, though the inherited interval would ping within the window
--- http_config
    websockify_ping_interval 1s;
--- config
    location /off {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_ping_interval off;
    }
    location /inherited {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $off = ws_connect(path => '/off');
my $on = ws_connect(path => '/inherited');
is $off->{status}, 101, "$T: /off: status";
is $on->{status}, 101, "$T: /inherited: status";
# Both silent: two periods of the http-level 1 s interval bring two pings (waited for, a
# loaded machine may be late), and none on /off in that time and half a period more.
my $t0 = time;
my @on;
wait_until {
    $on->read_some(0.1);
    push @on, map { $_->{opcode} } grep { $_ } map { ws_parse_frame(\$on->{buf}) } 1 .. 10;
    (grep { $_ == 9 } @on) >= 2
} 6;
sleep 2.5 - (time - $t0) if time - $t0 < 2.5;
$off->read_some(0.1);
my @off = map { $_->{opcode} } grep { $_ } map { ws_parse_frame(\$off->{buf}) } 1 .. 10;
is "@off", '', "$T: off: no frame in 2.5 s";
cmp_ok scalar(grep { $_ == 9 } @on), '>=', 2, "$T: the inherited 1 s interval pinged (@on)";



=== TEST 4: an invalid interval stops nginx, naming directive and value
--- config
    location /ws {
        websockify_pass 127.0.0.1:5901;
        websockify_ping_interval soon;
    }
--- must_die
--- error_log eval
qr/invalid value "soon" in "websockify_ping_interval" directive/
