# websockify_record: sessions recorded to files (the format: README "Recording sessions"),
# read back here independently of the module and through scripts/record-info; the failure
# policies (websockify_record_required) for a file that cannot be opened and a disk that
# fills up mid-session; a worker killed mid-session; a reload with a live recording.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;
use WsRecipes;
{ package WsTest::Run; WsRecipes->import; }

our $Dir;
BEGIN {
    $Dir = WsTest::ws_tmp() . '/recordings';
    mkdir $Dir;
    chmod 0777, $Dir;
    $ENV{TEST_NGINX_REC_DIR} = $Dir;
}

# A small tmpfs to fill (root only); unmounted at the end.
our ($Full, $FullSkip);
BEGIN {
    $Full = WsTest::ws_tmp() . '/full';
    mkdir $Full;
    $FullSkip = ($> == 0 && system("mount -t tmpfs -o size=64k,mode=0777 ngxws-full $Full 2>/dev/null") == 0)
        ? '' : 'needs root to mount a 64 KiB tmpfs';
    $ENV{TEST_NGINX_FULL_DIR} = $Full;
}
END { system("umount $Full 2>/dev/null") if !$FullSkip }
# A test stopped by a signal still runs END (the umount above, the mock servers' stop).
$SIG{$_} = sub { exit 1 } for qw(TERM INT HUP);

our $NoThreads;
BEGIN {
    my $v = `${\ ($ENV{TEST_NGINX_BINARY} // 'nginx')} -V 2>&1`;
    $NoThreads = $v =~ /--with-threads/ ? '' : 'nginx built without --with-threads';
}

# A recording read back: (header JSON, [[dir, ms, bytes], ...], complete).
sub WsTest::Run::read_recording {
    my ($path) = @_;
    return WsTest::Run::parse_recording(slurp($path) // return);
}

sub WsTest::Run::parse_recording {
    my ($data) = @_;
    return if substr($data, 0, 9) ne "NGXWSREC\x01";
    my $hlen = unpack('N', substr($data, 9, 4));
    my $header = substr($data, 13, $hlen);
    my ($pos, @records) = (13 + $hlen);
    while ($pos + 9 <= length $data) {
        my ($d, $ms, $n) = unpack('C N N', substr($data, $pos, 9));
        last if $pos + 9 + $n > length $data;
        push @records, [$d, $ms, substr($data, $pos + 9, $n)];
        $pos += 9 + $n;
    }
    return ($header, \@records, $pos == length $data);
}

sub WsTest::Run::side {
    my ($records, $dir) = @_;
    return join '', map { $_->[2] } grep { $_->[0] == $dir } @$records;
}

sub WsTest::Run::record_info {
    my ($path) = @_;
    my $tool = repo_root() . '/scripts/record-info';
    my $out = `python3 $tool --json $path 2>&1`;
    require JSON::PP;
    return eval { JSON::PP::decode_json($out) } // { error => $out };
}

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: a session recorded: header, what the client received, no input by default
--- http_config
    log_format rec '$websockify_session_id';
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_record $TEST_NGINX_REC_DIR/$websockify_session_id.rec;
        access_log logs/rec.log rec;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n", echo => 1);
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: banner";
$c->send(ws_frame(payload => 'typed secret'));
is $c->read_data(12, 5), 'typed secret', "$T: echo";
$c->send(ws_close_frame(1000));
close_ok($c, 1000, 'clean close');
$c->close;   # nginx writes the access log line once its lingering close ends
my $id = wait_until(sub { my $l = access_log_text('rec.log'); $l =~ /^(\S+)\n/ ? $1 : undef }, 5);
ok $id, "$T: the session id";
my ($header, $records, $complete) = read_recording("$::Dir/$id.rec");
ok defined $header, "$T: the file is named by \$websockify_session_id";
like $header, qr/^\{"session":"\Q$id\E","target":"127\.0\.0\.1:\d+","location":"\/ws","start":\d{13},"input":false\}$/,
    "$T: the header names the session";
ok $complete, "$T: complete";
is side($records, 0), "RFB 003.008\ntyped secret", "$T: what the client received, in order";
is side($records, 1), '', "$T: no input without websockify_record_input";
is((stat "$::Dir/$id.rec")[2] & 0777, 0600, "$T: readable by nginx's user only");
--- no_error_log
[error]



=== TEST 2: websockify_record_input: the client's bytes too, and record-info's summary of an RFB session
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_rfb_password pw;
        websockify_record $TEST_NGINX_REC_DIR/input.rec;
        websockify_record_input on;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), echo => 0, rfb => { types => [2], password => 'pw', desktop => 'audited desk' });
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: version";
$c->send(ws_frame(payload => "RFB 003.008\n"));
$c->read_data(2, 5);
$c->send(ws_frame(payload => "\x01"));
$c->read_data(4, 5);
$c->send(ws_frame(payload => "\x00"));
my $init = $c->read_data(24 + 12, 5);
my $keys = join '', map { pack('C C n N', 4, 1, 0, ord) . pack('C C n N', 4, 0, 0, ord) } split //, 'ls';
$keys .= pack('C C n N', 4, 1, 0, 0xff0d);
$c->send(ws_frame(payload => $keys));
wait_until { $t->data_len >= length $keys } 5;
$c->send(ws_close_frame(1000));
close_ok($c, 1000, 'clean close');
my ($header, $records) = read_recording("$::Dir/input.rec");
like $header, qr/"input":true/, "$T: the header says input is recorded";
is side($records, 0), "RFB 003.008\n\x01\x01\0\0\0\0$init", "$T: what the browser saw: the gateway's None handshake, then ServerInit";
is side($records, 1), "RFB 003.008\n\x01\x00$keys", "$T: what it sent";
unlike slurp("$::Dir/input.rec"), qr/pw/, "$T: no password in the recording";
is_deeply [map { $_->[2] } grep { $_->[0] == 2 } @$records],
    ['{"rfb_version":"RFB 003.008","client_version":"RFB 003.008","security":"none","width":800,"height":600,"desktop":"audited desk"}'],
    "$T: the session info record: what the browser's handshake showed it";
my $info = record_info("$::Dir/input.rec");
is $info->{desktop}, 'audited desk', "$T: record-info: the desktop";
is $info->{rfb_version}, 'RFB 003.008', "$T: record-info: the version";
is $info->{key_presses}, 3, "$T: record-info: key presses";
is $info->{typed}, "ls\x{23ce}", "$T: record-info: what they typed";
is $info->{bytes_from_client}, 14 + length $keys, "$T: record-info: bytes from the client";
--- no_error_log
[error]



=== TEST 3: a file that cannot be opened: 503 when required, unrecorded otherwise; one line each
--- config
    location /required {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_record /nonexistent/dir/r.rec;
        websockify_record_required on;
    }
    location /optional {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_record /nonexistent/dir/o.rec;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n");
my $c = ws_connect(path => '/required');
is $c->{status}, 503, "$T: required: 503 before any 101";
$c = ws_connect(path => '/optional');
is $c->{status}, 101, "$T: optional: the session goes on";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: relayed";
$c->close;
my $log = error_log_text();
like $log, qr/\[error\] .*websockify: cannot open recording "\/nonexistent\/dir\/r\.rec": \(2: No such file or directory\), refusing the session \(websockify_record_required\)/, "$T: required's line";
like $log, qr/\[error\] .*websockify: cannot open recording "\/nonexistent\/dir\/o\.rec": \(2: No such file or directory\), the session goes on unrecorded/, "$T: optional's line";



=== TEST 4: the disk fills up mid-session: required ends it with 1011, optional goes on, one line each
--- skip_eval: 8: $::FullSkip
--- config
    location /required {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_record $TEST_NGINX_FULL_DIR/r.rec;
        websockify_record_required on;
    }
    location /optional {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_record $TEST_NGINX_FULL_DIR/o.rec;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), send => ['full', 1 << 20]);
my $c = ws_connect(path => '/required');
is $c->{status}, 101, "$T: required: 101";
my $f = $c->read_until_opcode(8, 10);
is $f && $f->{code}, 1011, "$T: required: close 1011 when the recording cannot be written";
$c->close;
unlink "$::Full/r.rec";
$c = ws_connect(path => '/optional');
is $c->{status}, 101, "$T: optional: 101";
my $got = $c->read_data(1 << 20, 20);
is length $got, 1 << 20, "$T: optional: every byte relayed all the same";
ok $got eq prng_bytes('full', 1 << 20), "$T: optional: byte for byte";
$c->close;
my $log = error_log_text();
like $log, qr/\[error\] .*websockify: writing recording "[^"]*r\.rec" failed: \(28: No space left on device\), ending the session \(websockify_record_required\)/, "$T: required's line";
like $log, qr/\[error\] .*websockify: writing recording "[^"]*o\.rec" failed: \(28: No space left on device\), recording stopped/, "$T: optional's line";
is scalar(() = $log =~ /writing recording "[^"]*o\.rec"/g), 1, "$T: optional: logged once";
unlink "$::Full/o.rec";



=== TEST 5: a worker killed mid-session leaves a file readable up to its last complete record
--- skip_eval: 6: $ENV{TEST_NGINX_USE_VALGRIND} ? 'no master process under valgrind: the worker is nginx itself' : undef
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_record $TEST_NGINX_REC_DIR/killed.rec;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), send => ['killed', 512 * 1024], close_after => 30);
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
my $got = $c->read_data(512 * 1024, 10);
is length $got, 512 * 1024, "$T: relayed";
my ($worker) = nginx_worker_pids();
kill 'KILL', $worker;
$c->wait_eof(5);
my ($header, $records, $complete) = read_recording("$::Dir/killed.rec");
ok defined $header, "$T: the header is there";
my $down = side($records, 0);
ok length($down) >= 256 * 1024, "$T: at least the flushed chunks (" . length($down) . " bytes)";
ok substr($got, 0, length $down) eq $down, "$T: what it holds is what the client got";
my $info = record_info("$::Dir/killed.rec");
is $info->{bytes_to_client}, length $down, "$T: record-info reads it";
--- error_log eval
qr/\[alert\] .*exited on signal 9/
--- no_error_log
[crit]



=== TEST 6: a reload with a live recording: the old worker goes on recording to the end
--- skip_eval: 5: $ENV{TEST_NGINX_USE_VALGRIND} ? 'no master process under valgrind: no old worker to go on' : undef
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_record $TEST_NGINX_REC_DIR/reload.rec;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "before\n", echo => 1);
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
is $c->read_data(7, 5), "before\n", "$T: banner";
my $pid = slurp("$ENV{TEST_NGINX_SERVROOT}/logs/nginx.pid") // slurp('t/servroot/logs/nginx.pid');
chomp $pid;
kill 'HUP', $pid;
sleep 1;
$c->send(ws_frame(payload => 'after the reload'));
is $c->read_data(16, 5), 'after the reload', "$T: the session lives on";
$c->send(ws_close_frame(1000));
close_ok($c, 1000, 'clean close');
my ($header, $records, $complete) = read_recording("$::Dir/reload.rec");
is side($records, 0), "before\nafter the reload", "$T: recorded across the reload";
ok $complete, "$T: complete";



=== TEST 7: websockify_record off cancels an inherited one; nginx -t refuses a duplicate
--- http_config
    websockify_record $TEST_NGINX_REC_DIR/inherited.rec;
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_record off;
    }
    location /inherits {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "x");
unlink "$::Dir/inherited.rec";
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
$c->read_data(1, 5);
$c->close;
sleep 0.3;
ok !-e "$::Dir/inherited.rec", "$T: off: no file";
$c = ws_connect(path => '/inherits');
is $c->{status}, 101, "$T: 101";
$c->read_data(1, 5);
$c->close;
ok wait_until(sub { -e "$::Dir/inherited.rec" }, 5), "$T: inherited from http";
--- no_error_log
[error]



=== TEST 8: with aio threads and aio_write on, writes go through the thread pool
--- skip_eval: 6: $::NoThreads
--- main_config
    load_module $TEST_NGINX_WEBSOCKIFY_SO;
    thread_pool recordings threads=2;
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_record $TEST_NGINX_REC_DIR/pool.rec;
        aio threads=recordings;
        aio_write on;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), send => ['pool', 2 << 20]);
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
my $got = $c->read_data(2 << 20, 20);
is length $got, 2 << 20, "$T: relayed";
$c->send(ws_close_frame(1000));
close_ok($c, 1000, 'clean close');
my ($header, $records, $complete);
wait_until { ($header, $records, $complete) = read_recording("$::Dir/pool.rec"); $records && length(side($records, 0)) == 2 << 20 } 10;
ok $complete, "$T: complete";
ok side($records, 0) eq prng_bytes('pool', 2 << 20), "$T: every byte, in order";
SKIP: {
    skip 'nginx without --with-debug', 1 if `$Test::Nginx::Util::NginxBinary -V 2>&1` !~ /--with-debug/;
    like error_log_text(), qr/task #\d+ added to thread pool "recordings"/, "$T: the pool's tasks";
}
--- no_error_log
[error]
fell behind



=== TEST 9: through the thread pool, a full disk ends a required session with 1011 and its one line
--- skip_eval: 3: $::FullSkip || $::NoThreads
--- main_config
    load_module $TEST_NGINX_WEBSOCKIFY_SO;
    thread_pool recordings threads=1;
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_record $TEST_NGINX_FULL_DIR/pool-full.rec;
        websockify_record_required on;
        aio threads=recordings;
        aio_write on;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), send => ['pool', 1 << 20]);
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
my $f = $c->read_until_opcode(8, 10);
is $f && $f->{code}, 1011, "$T: close 1011";
$c->close;
unlink "$::Full/pool-full.rec";
like error_log_text(), qr/\[error\] .*websockify: writing recording "[^"]*pool-full\.rec" failed: \(28: No space left on device\), ending the session \(websockify_record_required\)/, "$T: the line";



=== TEST 10: a worker told to quit writes out what its thread pool still holds for sessions that ended
--- skip_eval: 5: $ENV{TEST_NGINX_USE_VALGRIND} ? 'no master process under valgrind' : $::NoThreads
--- main_config
    load_module $TEST_NGINX_WEBSOCKIFY_SO;
    thread_pool recordings threads=1;
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_record $TEST_NGINX_REC_DIR/slow.fifo;
        aio threads=recordings;
        aio_write on;
    }
    location = /ok { return 200 "ok\n"; }
--- request
GET /ok
--- response_body
ok
--- ws_test
# nginx is told to quit here, so the block's request comes first, not after the ws_test.
# A FIFO no one reads yet is a disk that takes writes slowly: once its 64 KiB are full, the
# pool's write waits, and the chunks behind it wait in the worker.
use Fcntl qw(O_RDONLY O_NONBLOCK);
my $fifo = "$::Dir/slow.fifo";
unlink $fifo;
POSIX::mkfifo($fifo, 0666) or die "mkfifo: $!";
sysopen(my $rd, $fifo, O_RDONLY | O_NONBLOCK) or die "open $fifo: $!";
my $n = 200 * 1024;
my $t = mock_target(port => rand_port(1), send => ['slow', $n], close_after_send => 1);
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
is length $c->read_data($n, 10), $n, "$T: relayed";
close_ok($c, 1000, 'the target closed');
$c->close;   # nothing of the session is left to keep the worker: no lingering close
sleep 0.3;
my $pid = slurp("$ENV{TEST_NGINX_SERVROOT}/logs/nginx.pid") // slurp('t/servroot/logs/nginx.pid');
chomp $pid;
kill 'QUIT', $pid;
sleep 0.5;
# Now drain it: the worker closes the file after its last write, then exits.
my ($data, $deadline) = ('', time + 10);
while (time < $deadline) {
    my $rin = '';
    vec($rin, fileno $rd, 1) = 1;
    select(my $rout = $rin, undef, undef, 0.2) or next;
    my $got = sysread($rd, my $buf, 65536);
    last if defined $got && $got == 0;
    $data .= $buf if $got;
}
close $rd;
unlink $fifo;
ok wait_until(sub { !kill 0, $pid }, 10), "$T: nginx has quit";
my ($header, $records, $complete) = parse_recording($data);
ok $complete, "$T: complete (" . length($data) . " bytes)";
ok side($records, 0) eq prng_bytes('slow', $n), "$T: every byte the client got, in order";
--- no_error_log
[error]
[alert]



=== TEST 11: the browser logs in itself (VncAuth through the relay): the session info record follows it
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_record $TEST_NGINX_REC_DIR/own-login.rec;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), rfb => { types => [2], password => 'own', desktop => "his \"desk\"" });
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: version";
$c->send(ws_frame(payload => "RFB 003.008\n"));
is unpack('H*', $c->read_data(2, 5)), '0102', "$T: VncAuth offered";
$c->send(ws_frame(payload => "\x02"));
my $challenge = $c->read_data(16, 5);
$c->send(ws_frame(payload => WsTest::_vnc_des('own', $challenge)));
is unpack('H*', $c->read_data(4, 5)), '00000000', "$T: logged in";
$c->send(ws_frame(payload => "\x01"));
my $init = $c->read_data(24 + 11, 5);
is substr($init, 24), 'his "desk"', "$T: ServerInit";
$c->send(ws_close_frame(1000));
close_ok($c, 1000, 'clean close');
my ($header, $records, $complete) = read_recording("$::Dir/own-login.rec");
ok $complete, "$T: complete";
my @info = map { $_->[2] } grep { $_->[0] == 2 } @$records;
is_deeply \@info,
    ['{"rfb_version":"RFB 003.008","client_version":"RFB 003.008","security":"vnc","width":800,"height":600,"desktop":"his \\"desk\\""}'],
    "$T: one session info record";
is side($records, 0), "RFB 003.008\n\x01\x02$challenge\0\0\0\0$init", "$T: and the stream as the browser got it";
my $info = record_info("$::Dir/own-login.rec");
is "$info->{security} $info->{width}x$info->{height} $info->{desktop}", 'vnc 800x600 his "desk"', "$T: record-info reads it";
--- no_error_log
[error]
