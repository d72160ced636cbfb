# websockify_zone under stress: a full zone, a worker that dies, a reload with live sessions.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;

workers(2);
master_on();
worker_connections(1024);

run_tests();
Test::More::done_testing();

sub status {
    my $r = http_raw("GET /status HTTP/1.0\r\nHost: x\r\n\r\n");
    require JSON::PP;
    return eval { JSON::PP::decode_json($r->{body} // '') } // {};
}

sub master_pid {
    my $f = Test::Nginx::Util::server_root() . '/logs/nginx.pid';
    my $pid = WsTest::slurp($f) // '';
    chomp $pid;
    return $pid;
}

sub closed_total {
    my $s = shift;
    my $n = 0;
    $n += $_ for values %{ $s->{closed} // {} };
    return $n;
}

__DATA__

=== TEST 1: a full zone: every session still works, the extra ones are counted, one warning
--- http_config
    websockify_zone small 32k;
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
    location /status { websockify_status zone=small; }
--- error_log
websockify: zone "small" is full, sessions work but are not listed
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n", echo => 1);
my @c;
for my $i (1 .. 120) {
    my $c = ws_connect();
    is $c->{status}, 101, "$T: session $i" if $c->{status} != 101;
    push @c, $c;
}
my $ok = 0;
for my $i (0 .. $#c) {
    $c[$i]->read_data(12, 5);
    $c[$i]->send(ws_frame(payload => "s$i"));
    $ok++ if $c[$i]->read_data(length("s$i"), 5) eq "s$i";
}
is $ok, 120, "$T: every session relays";
my $j = main::status();
cmp_ok $j->{untracked}, '>=', 1, "$T: some sessions untracked ($j->{untracked})";
is $j->{active} + $j->{untracked}, 120, "$T: listed + untracked = all";
is $j->{accepted}, 120, "$T: accepted counts all";
my $warns = () = error_log_text() =~ /zone "small" is full/g;
cmp_ok $warns, '>=', 1, "$T: warned";
cmp_ok $warns, '<=', 2, "$T: at most once a minute per worker ($warns)";
$_->close for @c;
ok wait_until(sub { main::status()->{active} == 0 }, 10), "$T: records freed";
my @more = map { ws_connect() } 1 .. 3;
ok wait_until(sub { main::status()->{active} == 3 }, 10), "$T: freed room is used again";

=== TEST 2: the records of a worker that died are swept
--- http_config
    websockify_zone z 1m;
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
    location /status { websockify_status zone=z; }
--- error_log
[alert]
exited on signal 9
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n");
my @c = map { ws_connect() } 1 .. 6;
$_->read_data(12, 5) for @c;
my $j = main::status();
is $j->{active}, 6, "$T: six listed";
my $victim = $j->{sessions}[0]{pid};
my $n = grep { $_->{pid} == $victim } @{ $j->{sessions} };
kill 'KILL', $victim;
ok wait_until(sub { !kill(0, $victim) }, 5), "$T: worker $victim is gone";
ok wait_until(sub {
    my $s = main::status();
    !grep { $_->{pid} == $victim } @{ $s->{sessions} // [] }
}, 5), "$T: its $n records were swept";
is main::status()->{active}, 6 - $n, "$T: the other worker's sessions stay";

=== TEST 3: after a reload, the old workers' live sessions stay listed until they end
--- http_config
    websockify_zone z 1m;
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
    location /status { websockify_status zone=z; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n", echo => 1);
my @old = map { ws_connect() } 1 .. 3;
$_->read_data(12, 5) for @old;
my %old_pids = map { $_->{pid} => 1 } @{ main::status()->{sessions} };
kill 'HUP', main::master_pid();
# The new workers take connections once the old ones stopped listening (under valgrind,
# without a master process, nginx itself reloads and never says so in its title).
if ($ENV{TEST_NGINX_USE_VALGRIND}) {
    sleep 1;
} else {
    ok wait_until(sub { !grep { (slurp("/proc/$_/cmdline") // '') !~ /shutting down/ } keys %old_pids }, 10),
        "$T: the old workers are shutting down";
}
my @new = map { ws_connect() } 1 .. 2;
$_->read_data(12, 5) for @new;
my $j = main::status();
is $j->{active}, 5, "$T: old and new sessions listed";
is scalar(grep { $old_pids{ $_->{pid} } } @{ $j->{sessions} }), 3, "$T: three on the old workers";
$old[0]->send(ws_frame(payload => 'still'));
is $old[0]->read_data(5, 5), 'still', "$T: an old session still relays";
$_->send(ws_close_frame(1000)) for @old;
$_->read_until_opcode(8, 5) for @old;
ok wait_until(sub { main::status()->{active} == 2 }, 5), "$T: ended old sessions leave the zone";
is main::status()->{accepted}, 5, "$T: the counters went on across the reload";

=== TEST 4: sessions the full zone could not list count as closed, and their bytes, when they end
--- http_config
    websockify_zone small 32k;
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
    location /status { websockify_status zone=small; }
--- error_log
websockify: zone "small" is full, sessions work but are not listed
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n", echo => 1);
my @c = map { ws_connect() } 1 .. 120;
my ($from, $to) = (0, 0);
for my $i (0 .. $#c) {
    $c[$i]->read_data(12, 5);
    $c[$i]->send(ws_frame(payload => "s$i"));
    $c[$i]->read_data(length("s$i"), 5);
    $from += length "s$i";
    $to += 12 + length "s$i";
}
my $j = main::status();
cmp_ok $j->{untracked}, '>=', 1, "$T: the zone overflowed ($j->{untracked} unlisted)";
$_->send(ws_close_frame(1000)) for @c;
$_->read_until_opcode(8, 5) for @c;
$_->close for @c;
ok wait_until(sub { main::closed_total(main::status()) >= 120 }, 10), "$T: every session counted closed";
$j = main::status();
is $j->{active}, 0, "$T: none listed";
is $j->{accepted}, main::closed_total($j) + $j->{active}, "$T: accepted = closed + active";
is $j->{closed}{client}, 120, "$T: closed by the client, listed or not";
is $j->{bytes_from_client}, $from, "$T: bytes from clients of every session";
is $j->{bytes_to_client}, $to, "$T: bytes to clients of every session";

=== TEST 5: a worker killed with live sessions: they count as closed worker_exit, the byte totals do not go down
--- http_config
    websockify_zone z 1m;
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
    location /status { websockify_status zone=z; }
--- error_log
[alert]
exited on signal 9
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n", echo => 1);
my @c = map { ws_connect() } 1 .. 6;
for my $c (@c) {
    $c->read_data(12, 5);
    $c->send(ws_frame(payload => 'abcd'));
    $c->read_data(4, 5);
}
# The owners write their sessions' bytes to the zone every 500 ms; a write between a
# session's read and its echo holds one total but not yet the other.
my $before;
ok wait_until(sub { $before = main::status(); $before->{bytes_from_client} == 24 && $before->{bytes_to_client} == 6 * 16 }, 5),
    "$T: bytes written to the zone";
is $before->{bytes_to_client}, 6 * 16, "$T: bytes to clients";
my $victim = $before->{sessions}[0]{pid};
my $n = grep { $_->{pid} == $victim } @{ $before->{sessions} };
kill 'KILL', $victim;
ok wait_until(sub { !kill(0, $victim) }, 5), "$T: worker $victim is gone";
ok wait_until(sub { (main::status()->{closed}{worker_exit} // 0) == $n }, 5),
    "$T: its $n sessions counted closed, cause worker_exit";
my $j = main::status();
is $j->{active}, 6 - $n, "$T: the other worker's sessions stay";
is $j->{accepted}, main::closed_total($j) + $j->{active}, "$T: accepted = closed + active";
is $j->{bytes_from_client}, $before->{bytes_from_client}, "$T: bytes from clients did not go down";
is $j->{bytes_to_client}, $before->{bytes_to_client}, "$T: bytes to clients did not go down";
my $p = http_raw("GET /status?format=prometheus HTTP/1.0\r\nHost: x\r\n\r\n")->{body} // '';
like $p, qr/^websockify_sessions_closed_total\{cause="worker_exit"\} $n$/m, "$T: in the metrics";
like $p, qr/^websockify_payload_bytes_total\{direction="from_client"\} 24$/m, "$T: payload counter kept";
