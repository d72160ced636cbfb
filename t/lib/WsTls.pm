package WsTls;

# Throwaway certificates for the TLS-to-the-target tests, made with the openssl command in
# a temporary directory (removed with WsTest's). make_pki() returns a hash of file names:
#
#   ca, ca_key             the trusted root ("websockify test CA")
#   server, server_key     vnc.test (subjectAltName DNS:vnc.test), signed by the root
#   other_ca               another root, which signed only wrong_ca
#   wrong_ca               vnc.test, signed by other_ca, which nobody trusts by default
#   wrong_name             other.test, signed by the root
#   expired                vnc.test, signed by the root, expired a day ago
#   chain                  vnc.test signed by a second intermediate CA, then both
#                          intermediates (root -> first -> second -> vnc.test)
#   client_ca              the CA a target trusts for client certificates
#   client, client_key     CN=websockify-client, signed by client_ca
#   client2, client2_key   CN=second-client, signed by client_ca
#   key                    the one key of every server certificate above

use strict;
use warnings;

use POSIX ();
use WsTest ();

use Exporter 'import';
our @EXPORT = qw(make_pki);

sub _run {
    my $cmd = shift;
    system("$cmd >/dev/null 2>&1") == 0 or die "failed: $cmd\n";
}

# Validity for `openssl x509 -req`: DAYS from now, or for a negative DAYS a period that
# ended that many days ago. OpenSSL 3.0 (bookworm) takes a negative -days; 3.4 and later
# (trixie) refuse it but have -not_before/-not_after.
sub _validity {
    my $days = shift;
    return "-days $days" if $days > 0;
    return "-days $days" if qx{openssl x509 -help 2>&1} !~ /-not_after/;
    my $stamp = sub { POSIX::strftime('%Y%m%d%H%M%SZ', gmtime(time + $_[0] * 86400)) };
    return '-not_before ' . $stamp->($days - 1) . ' -not_after ' . $stamp->($days);
}

sub make_pki {
    my $d = WsTest::ws_tmp() . '/pki';
    mkdir $d;
    my $key = sub { _run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out $d/$_[0].key") };
    my $ext = sub {
        my ($name, $text) = @_;
        open my $f, '>', "$d/$name.ext" or die;
        print $f $text;
        close $f;
        return "$d/$name.ext";
    };
    my $ca_ext = $ext->('ca', "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n");
    my $root = sub {
        my ($name, $cn) = @_;
        $key->($name);
        _run("openssl req -x509 -new -key $d/$name.key -out $d/$name.pem -days 2 -subj '/CN=$cn'"
            . " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign");
    };
    # leaf(NAME, CN, SIGNER, DAYS, EXTFILE, KEYNAME)
    my $leaf = sub {
        my ($name, $cn, $signer, $days, $extfile, $keyname) = @_;
        _run("openssl req -new -key $d/$keyname.key -out $d/$name.csr -subj '/CN=$cn'");
        _run("openssl x509 -req -in $d/$name.csr -CA $d/$signer.pem -CAkey $d/$signer.key"
            . " -CAcreateserial -out $d/$name.pem " . _validity($days) . " -extfile $extfile");
    };
    $root->('ca', 'websockify test CA');
    $root->('other_ca', 'untrusted test CA');
    $root->('client_ca', 'websockify client CA');
    $key->('server');
    my $server_ext = $ext->('server', "subjectAltName=DNS:vnc.test\nextendedKeyUsage=serverAuth\n");
    $leaf->('server', 'vnc.test', 'ca', 2, $server_ext, 'server');
    $leaf->('wrong_ca', 'vnc.test', 'other_ca', 2, $server_ext, 'server');
    $leaf->('wrong_name', 'other.test',  'ca', 2,
        $ext->('other', "subjectAltName=DNS:other.test\nextendedKeyUsage=serverAuth\n"), 'server');
    # notAfter a day before notBefore (now): expired.
    $leaf->('expired', 'vnc.test', 'ca', -1, $server_ext, 'server');
    $key->('inter1');
    $leaf->('inter1', 'websockify test intermediate 1', 'ca', 2, $ca_ext, 'inter1');
    $key->('inter2');
    $leaf->('inter2', 'websockify test intermediate 2', 'inter1', 2, $ca_ext, 'inter2');
    $leaf->('leaf', 'vnc.test', 'inter2', 2, $server_ext, 'server');
    WsTest::_write_file("$d/chain.pem", join '', map { WsTest::slurp("$d/$_.pem") } qw(leaf inter2 inter1));
    my $client_ext = $ext->('client', "extendedKeyUsage=clientAuth\n");
    $key->('client');
    $leaf->('client', 'websockify-client', 'client_ca', 2, $client_ext, 'client');
    $key->('client2');
    $leaf->('client2', 'second-client', 'client_ca', 2, $client_ext, 'client2');
    my %f = (key => "$d/server.key", server_key => "$d/server.key", ca_key => "$d/ca.key",
        client_key => "$d/client.key", client2_key => "$d/client2.key");
    $f{$_} = "$d/$_.pem" for qw(ca other_ca server wrong_ca wrong_name expired chain client_ca client client2);
    $ENV{"TEST_NGINX_PKI_" . uc $_} = $f{$_} for keys %f;
    return \%f;
}

1;
