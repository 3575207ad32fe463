# shellcheck shell=bash
# DCUtR hole punching behind NATs with the ringp2p tool (issue 6, cases 1 and 2).
# Each case_* function runs in its own shell with its own topology (run.sh).
#
# r1 is a relay on the public segment. host-b listens on 4001 behind nat-b and reserves a slot on
# r1; host-a, behind nat-a, pings host-b through r1 (`ringp2p ping R1/p2p-circuit/p2p/B`) while
# listening on 4001 itself, so that host-b can punch to it. host-b received the relayed
# connection, so it drives the hole punch (DCUtR's B); host-a answers (A).
#
# Both ends dial from their listen port (the tool's nodes dial every connection from it, as
# go-libp2p does), so r1 observes each host at its NAT's public address with port 4001, and
# those observed addresses are what the hosts offer each other. Every address here is private
# or unroutable by go-libp2p's rule (10/8, and 203.0.113.0/24 is TEST-NET-3), which DCUtR never
# offers nor dials by default: both hosts run with --dcutr-allow-private. It also lets the
# hosts offer their LAN addresses (10.0.x.2), which the other side fails to reach at once (no
# route); the loopback addresses are left out because the relay is not on loopback.

# hp_keyed NAME: a fresh key file for a node that prints no "ready" line (ping); prints its peer
# ID. The key file starts with a dot, so a failing case does not dump it.
hp_keyed() {
    json_val peerId "$("$RINGP2P" keygen --out "$NT_DIR/.$1.key" --json)"
}

# hp_relay_and_b [FLAG...]: r1 relays; host-b listens on 4001 with FLAGs and reserves on r1.
# Sets BID and CIRC (r1's circuit address of host-b).
hp_relay_and_b() {
    local rid
    spawn r1 r1 "$RINGP2P" listen --listen "/ip4/$R1_IP/tcp/4001" --relay-server --no-autonat \
        --json
    rid=$(node_id r1)
    spawn host-b b "$RINGP2P" listen --listen /ip4/0.0.0.0/tcp/4001 \
        --relay "/ip4/$R1_IP/tcp/4001/p2p/$rid" --no-autonat --dcutr-allow-private --json "$@"
    BID=$(node_id b)
    wait_for "$(out b)" '"event":"reservation".*"ok":true' 10 ||
        fail "host-b holds no reservation on r1: $(first_match "$(out b)" '"event":"reservation"')"
    CIRC=/ip4/$R1_IP/tcp/4001/p2p/$rid/p2p-circuit/p2p/$BID
}

# hp_count FILE REGEX: lines of FILE matching REGEX.
hp_count() {
    grep -cE -- "$2" "$1" || true
}

# (1) Two port-preserving (cone) NATs, 30 ms each way on nat-a's WAN link. The first pings go
# over the relay; host-b punches; both ends report the hole punch; the later pings go direct.
# From host-b's side: a direct connection from host-a's NAT (203.0.113.10, port 4001 kept), and
# the relayed connection closed once idle. The round trip DCUtR measured over the relay
# includes nat-a's delay both ways (> 60 ms), which is what times host-b's dial.
case_holepunch_cone() {
    need_ringp2p
    topo_up --nat-a cone --nat-b cone --delay-a 30
    local aid line n_rel n_dir seq_last
    hp_relay_and_b
    aid=$(hp_keyed a)
    spawn host-a a "$RINGP2P" ping "$CIRC" --key "$NT_DIR/.a.key" \
        --listen /ip4/0.0.0.0/tcp/4001 --dcutr-allow-private --count 12 --interval 0.5 --json
    finish a || fail "ping from host-a exited $?; its output:"$'\n'"$(cat "$(out a)")"
    note "host-a (pinger):"$'\n'"$(cat "$(out a)")"
    note "host-b (listener):"$'\n'"$(grep -E '"event":"(holepunch|connection|disconnection)"' \
        "$(out b)")"

    # host-b, the initiator
    line=$(first_match "$(out b)" '"event":"holepunch"')
    [ -n "$line" ] || fail "host-b reported no hole punch"
    expect_eq "host-b holepunch ok" "$(json_val ok "$line")" true
    expect_eq "host-b holepunch peer" "$(json_val peerId "$line")" "$aid"
    expect_eq "host-b is the initiator" "$(json_val initiator "$line")" true
    [ "$(json_val attempts "$line")" -ge 1 ] || fail "host-b: the punch took no attempt: $line"
    [ "$(json_val rttUs "$line")" -ge 60000 ] ||
        fail "host-b measured $(json_val rttUs "$line") us over the relay; nat-a's delay alone is 60 ms"
    # ... sees host-a directly, at nat-a's public address with the port kept
    line=$(first_match "$(out b)" '"event":"connection","peerId":"'"$aid"'".*"relayed":false')
    [ -n "$line" ] || fail "host-b has no direct connection from host-a"
    expect_eq "host-b's direct connection comes from" "$(json_val remoteAddr "$line")" \
        "/ip4/$NAT_A_IP/tcp/4001"
    # ... and the relayed connection went once idle
    wait_for "$(out b)" '"event":"disconnection","peerId":"'"$aid"'","remoteAddr":"[^"]*p2p-circuit' 5 ||
        fail "host-b's relayed connection to host-a was never closed"

    # host-a, the responder
    line=$(first_match "$(out a)" '"event":"holepunch"')
    [ -n "$line" ] || fail "host-a reported no hole punch"
    expect_eq "host-a holepunch ok" "$(json_val ok "$line")" true
    expect_eq "host-a holepunch peer" "$(json_val peerId "$line")" "$BID"
    expect_eq "host-a is the responder" "$(json_val initiator "$line")" false
    # ... pinged over the relay first, then directly, and every ping was answered
    expect_eq "host-a's first ping relayed" "$(json_val relayed "$(first_match "$(out a)" \
        '"event":"ping","seq":1,')")" true
    seq_last=$(first_match "$(out a)" '"event":"ping","seq":12,')
    expect_eq "host-a's last ping relayed" "$(json_val relayed "$seq_last")" false
    n_rel=$(hp_count "$(out a)" '"event":"ping".*"rttUs":[0-9]+,"relayed":true')
    n_dir=$(hp_count "$(out a)" '"event":"ping".*"rttUs":[0-9]+,"relayed":false')
    expect_eq "pings answered" "$((n_rel + n_dir))" 12
    note "$n_rel ping(s) relayed, then $n_dir direct"
    # no relayed ping after the first direct one
    grep -E '"event":"ping"' "$(out a)" | awk '/"relayed":false/ { d = 1 } /"relayed":true/ && d { exit 1 }' ||
        fail "host-a pinged over the relay again after a direct ping"

    # the NATs: the punch's bare SYNs met the mappings the other side's SYNs had opened
    note "bare SYNs from the WAN let in / dropped: nat-a $(syn_count nat-a in)/$(
        syn_count nat-a dropped), nat-b $(syn_count nat-b in)/$(syn_count nat-b dropped)"
    [ $(($(syn_count nat-a in) + $(syn_count nat-b in))) -ge 1 ] ||
        fail "no NAT let a bare SYN in: that was no hole punch"
    stop b || fail "host-b exited $?"
    stop r1 || fail "r1 exited $?"
}

# (2) nat-b symmetric (a random public port per flow): the port r1 observed is not the one
# host-b's punch leaves from, so every attempt fails. host-b gives up after its three attempts
# with ok:false and says why, host-a reports each exchange it answered as failed, no direct
# connection appears, and the pings keep going over the relay to the end. --timeout 3 on both
# bounds each punch dial (the node's dial timeout), so the attempts fit in the pings.
case_holepunch_symmetric() {
    need_ringp2p
    topo_up --nat-a cone --nat-b symmetric
    local aid line n_rel
    hp_relay_and_b --timeout 3
    aid=$(hp_keyed a)
    spawn host-a a "$RINGP2P" ping "$CIRC" --key "$NT_DIR/.a.key" \
        --listen /ip4/0.0.0.0/tcp/4001 --dcutr-allow-private --timeout 3 --count 24 \
        --interval 0.75 --json
    wait_for "$(out b)" '"event":"holepunch"' 25 || fail "host-b reported no hole punch"
    finish a || fail "ping from host-a exited $?; its output:"$'\n'"$(cat "$(out a)")"
    note "host-a (pinger):"$'\n'"$(cat "$(out a)")"
    note "host-b (listener):"$'\n'"$(grep -E '"event":"(holepunch|connection|disconnection)"' \
        "$(out b)")"

    line=$(first_match "$(out b)" '"event":"holepunch"')
    expect_eq "host-b holepunch ok" "$(json_val ok "$line")" false
    expect_eq "host-b holepunch peer" "$(json_val peerId "$line")" "$aid"
    expect_eq "host-b holepunch attempts" "$(json_val attempts "$line")" 3
    [ -n "$(json_val error "$line")" ] || fail "host-b's failed hole punch says nothing: $line"
    expect_eq "host-b hole punches reported" "$(hp_count "$(out b)" '"event":"holepunch"')" 1
    expect_eq "host-a hole punches reported, all failed" \
        "$(hp_count "$(out a)" '"event":"holepunch".*"ok":false')" 3
    expect_eq "host-a hole punches that succeeded" \
        "$(hp_count "$(out a)" '"event":"holepunch".*"ok":true')" 0
    expect_eq "direct connections host-b saw from host-a" \
        "$(hp_count "$(out b)" '"event":"connection","peerId":"'"$aid"'".*"relayed":false')" 0
    n_rel=$(hp_count "$(out a)" '"event":"ping".*"rttUs":[0-9]+,"relayed":true')
    expect_eq "pings answered over the relay" "$n_rel" 24
    stop b || fail "host-b exited $?"
    stop r1 || fail "r1 exited $?"
}
