# shellcheck shell=bash
# AutoNAT v1 behind a NAT with the ringp2p tool (issue 6, case 4).
# Each case_* function runs in its own shell with its own topology (run.sh).

# reachability_of NAME WANT SECONDS: waits for node NAME's first reachability event and checks it
# says WANT.
reachability_of() {
    wait_for "$(out "$1")" '"event":"reachability"' "$3" ||
        fail "$1: no reachability event within $3 s (want '$2')"
    expect_eq "$1 reachability" "$(json_val status "$(first_match "$(out "$1")" \
        '"event":"reachability"')")" "$2"
}

# (4) r1 serves AutoNAT; r2 (on the public segment) and host-a (behind nat-a, a cone NAT that
# drops unsolicited inbound) connect to it and ask. r2 must learn "public", host-a "private".
#
# Every address here is unroutable by go-libp2p's rule (203.0.113.0/24 is TEST-NET-3, 10/8 is
# private), so all three nodes run with --autonat-allow-private: the server, to count the
# requests and dial the addresses back; the clients, to count r1 (a server on an unroutable
# address) as a server to ask at all. Without it no probe is made and every node stays unknown.
#
# host-a's verdict is the server's dial-back to nat-a timing out (the NAT drops the SYN without
# an answer); a failed dial-back is answered only after the server's dial timeout, 15 s by
# default, so r1 runs with --autonat-dial-timeout 3 to keep the case short.
#
# Control: the same host behind the same router, with nat-a switched to a plain router (route:
# no NAT, no filter). A second node on host-a must then be found "public". r1 has a route to
# 10.0.1.0/24 via nat-a from the start, so the only difference is nat-a's ruleset.
case_autonat_nat() {
    need_ringp2p
    topo_up --nat-a cone --nat-b cone
    ip -n "$(nt_ns r1)" route add 10.0.1.0/24 via "$NAT_A_IP"
    local sid srv t0
    spawn r1 srv "$RINGP2P" listen --listen "/ip4/$R1_IP/tcp/4001" --autonat-server \
        --autonat-allow-private --autonat-dial-timeout 3 --no-autonat --json
    sid=$(node_id srv)
    srv=/ip4/$R1_IP/tcp/4001/p2p/$sid
    t0=$(date +%s)
    spawn r2 pub "$RINGP2P" listen --listen "/ip4/$R2_IP/tcp/4001" --autonat-allow-private \
        --connect "$srv" --json
    spawn host-a a "$RINGP2P" listen --listen /ip4/0.0.0.0/tcp/4001 --autonat-allow-private \
        --connect "$srv" --json
    node_id pub >/dev/null
    node_id a >/dev/null
    reachability_of pub public 10
    reachability_of a private 15
    note "verdicts after $(($(date +%s) - t0)) s"
    # the verdict is the dial-back's: r1 dialed nat-a's public address and nat-a dropped the SYN
    [ "$(syn_count nat-a dropped)" -ge 1 ] ||
        fail "nat-a dropped no SYN: r1 never dialed host-a back"
    note "nat-a dropped $(syn_count nat-a dropped) unsolicited SYN(s)"
    stop a || fail "host-a exited $?"

    nat_set nat-a route
    spawn host-a a2 "$RINGP2P" listen --listen /ip4/0.0.0.0/tcp/4002 --autonat-allow-private \
        --connect "$srv" --json
    node_id a2 >/dev/null
    reachability_of a2 public 10
    stop a2 || fail "host-a (route) exited $?"
    stop pub || fail "r2 exited $?"
    stop srv || fail "r1 exited $?"
}
