# shellcheck shell=bash
# Proofs of the test internet itself, with nstool only: what the ringp2p cases rely on.
# Each case_* function runs in its own shell with its own topology (run.sh).

# The NATs translate and filter: hosts reach the public segment and appear there as their NAT's
# public address with the source port kept; nobody outside can open a connection inwards.
case_env_topology() {
    topo_up --nat-a cone --nat-b cone
    spawn r1 serve "$NSTOOL" serve "$R1_IP" 7001
    spawn host-a inside "$NSTOOL" serve 0.0.0.0 6000
    wait_listen r1 7001
    wait_listen host-a 6000

    local o
    o=$(run_in host-a "$NSTOOL" observe "$R1_IP" 7001 --bind 40001) || true
    expect_eq "host-a as seen by r1" "$(field observed "$o")" "$NAT_A_IP:40001"
    o=$(run_in host-b "$NSTOOL" observe "$R1_IP" 7001 --bind 40002) || true
    expect_eq "host-b as seen by r1" "$(field observed "$o")" "$NAT_B_IP:40002"

    # Controls: host-a's server answers inside its LAN and from its own router.
    o=$(run_in nat-a "$NSTOOL" connect "$HOST_A_IP" 6000 --timeout 1000) || true
    expect_eq "nat-a -> host-a:6000" "$(field result "$o")" connected

    # Unsolicited inbound, at the NAT's public address and (with a route, as a neighbour on the
    # segment could have) at the private address itself: silently dropped, so a timeout.
    ip -n "$(nt_ns r1)" route add 10.0.1.0/24 via "$NAT_A_IP"
    { run_in r1 "$NSTOOL" connect "$NAT_A_IP" 6000 --timeout 1500 >"$(out in-pub)" || true; } &
    local p1=$!
    { run_in r1 "$NSTOOL" connect "$HOST_A_IP" 6000 --timeout 1500 >"$(out in-priv)" || true; } &
    local p2=$!
    wait $p1 || true
    wait $p2 || true
    expect_eq "r1 -> nat-a public :6000" "$(field result "$(cat "$(out in-pub)")")" timeout
    expect_eq "r1 -> host-a private :6000" "$(field result "$(cat "$(out in-priv)")")" timeout
    [ "$(syn_count nat-a dropped)" -ge 2 ] || fail "nat-a counted no dropped SYNs"

    # ... and it was the filter that dropped them: as a plain router nat-a lets the same through.
    nat_set nat-a route
    o=$(run_in r1 "$NSTOOL" connect "$HOST_A_IP" 6000 --timeout 1500) || true
    expect_eq "r1 -> host-a private :6000 with nat-a filter off" "$(field result "$o")" connected
}

# punch_pair TIMEOUT_MS HOST_A_WAIT_MS [FLAG...]: a rendezvous on r1, then host-a and host-b
# punch from local port 5000 (FLAGs go to both). Sets PA, PB (their result lines) and RA, RB
# (their exit codes).
punch_pair() {
    local timeout=$1 wait=$2
    shift 2
    spawn r1 rdv "$NSTOOL" rendezvous "$R1_IP" 7000 --timeout 15000
    wait_listen r1 7000
    spawn host-a punch-a "$NSTOOL" punch "$R1_IP" 7000 --bind 5000 --timeout "$timeout" \
        --wait "$wait" "$@"
    spawn host-b punch-b "$NSTOOL" punch "$R1_IP" 7000 --bind 5000 --timeout "$timeout" "$@"
    RA=0 RB=0
    finish punch-a || RA=$?
    finish punch-b || RB=$?
    PA=$(cat "$(out punch-a)")
    PB=$(cat "$(out punch-b)")
    note "host-a: $PA"
    note "host-b: $PB"
}

# Both punches connected, from and to the NATs' public addresses with the ports kept.
expect_punched() {
    [[ $RA -eq 0 && $RB -eq 0 ]] || fail "punch failed (exit $RA / $RB)"
    expect_eq "host-a public address (port kept)" "$(field me "$PA")" "$NAT_A_IP:5000"
    expect_eq "host-b public address (port kept)" "$(field me "$PB")" "$NAT_B_IP:5000"
    expect_eq "host-a punched to" "$(field peer "$PA")" "$NAT_B_IP:5000"
    expect_eq "host-b punched to" "$(field peer "$PB")" "$NAT_A_IP:5000"
    expect_eq "host-a connection made by" "$(field via "$PA")" connect
    expect_eq "host-b connection made by" "$(field via "$PB")" connect
    note "bare SYNs from the WAN let in / dropped: nat-a $(syn_count nat-a in)/$(
        syn_count nat-a dropped), nat-b $(syn_count nat-b in)/$(syn_count nat-b dropped)"
}

# Two port-preserving NATs, one WAN link delayed: both hosts meet at a rendezvous on r1, learn
# each other's observed address, and connect to it from their bound ports. host-a starts 100 ms
# late (as with a poor RTT estimate), so host-b's SYN reaches nat-a first and is dropped; host-a's
# SYN then finds host-b's mapping on nat-b, and host-b, still in SYN-SENT, completes a
# simultaneous open without waiting for its own SYN's retransmission.
case_env_punch_cone() {
    topo_up --nat-a cone --nat-b cone --delay-a 30
    punch_pair 5000 100
    expect_punched
    expect_eq "bare SYNs nat-a let in" "$(syn_count nat-a in)" 0
    expect_eq "bare SYNs nat-a dropped" "$(syn_count nat-a dropped)" 1
    expect_eq "bare SYNs nat-b let in" "$(syn_count nat-b in)" 1
    local ms
    ms=$(field ms "$PB")
    [ "$ms" -lt 1000 ] || fail "host-b took ${ms} ms: it waited for a SYN retransmission"
}

# Both WAN links delayed alike, so both SYNs leave before either arrives: they cross, each NAT
# lets the other's bare SYN in on the mapping its own SYN made (conntrack SYN_SENT2), and both
# hosts go SYN-SENT -> SYN-RECEIVED -> ESTABLISHED with no SYN lost. Both also listen on port
# 5000, as a libp2p node does: the incoming SYN must still reach the connecting socket (its exact
# 4-tuple wins over the listener), so both report via=connect.
case_env_punch_crossing() {
    topo_up --nat-a cone --nat-b cone --delay-a 20 --delay-b 20
    punch_pair 5000 0 --listen
    expect_punched
    expect_eq "bare SYNs nat-a let in" "$(syn_count nat-a in)" 1
    expect_eq "bare SYNs nat-b let in" "$(syn_count nat-b in)" 1
    expect_eq "bare SYNs nat-a dropped" "$(syn_count nat-a dropped)" 0
    expect_eq "bare SYNs nat-b dropped" "$(syn_count nat-b dropped)" 0
}

# nat-b symmetric: its random port per flow means the address the rendezvous saw is not the
# one host-b's punch comes from, so neither side's SYN matches a mapping on the other NAT.
# Both give up cleanly at their timeout.
case_env_punch_symmetric() {
    topo_up --nat-a cone --nat-b symmetric
    punch_pair 3000 0
    local a=$PA b=$PB ra=$RA rb=$RB
    expect_eq "host-a punch exit (3 = timeout)" $ra 3
    expect_eq "host-b punch exit (3 = timeout)" $rb 3
    expect_eq "host-a result" "$(field result "$a")" timeout
    expect_eq "host-a public address (cone, port kept)" "$(field me "$a")" "$NAT_A_IP:5000"
    local bme
    bme=$(field me "$b")
    [[ ${bme%:*} == "$NAT_B_IP" && ${bme#*:} != 5000 ]] ||
        fail "host-b should appear as $NAT_B_IP with a random port, got $bme"
    note "host-b public address at the rendezvous: $bme (random)"

    # nat-b's conntrack: host-b's flow to the rendezvous and its punch flow to host-a leave from
    # local port 5000 but got different public ports.
    local ct rdv_port punch_port
    ct=$(conntrack nat-b)
    rdv_port=$(ct_public_port "$ct" "$HOST_B_IP" 5000 "$R1_IP")
    punch_port=$(ct_public_port "$ct" "$HOST_B_IP" 5000 "$NAT_A_IP")
    note "nat-b conntrack:"
    grep "sport=5000" <<<"$ct" | sed 's/^/     /' || true
    expect_eq "nat-b public port of host-b -> rendezvous" "$rdv_port" "${bme#*:}"
    [ -n "$punch_port" ] || fail "no conntrack entry for host-b's punch on nat-b"
    [ "$punch_port" != "$rdv_port" ] ||
        fail "nat-b gave the punch the rendezvous port $rdv_port: the NAT is not symmetric"
    note "nat-b public port of host-b's punch: $punch_port (differs: mapping mismatch)"
    # Each side's SYN met no mapping on the other NAT and was dropped there; none was let in.
    expect_eq "bare SYNs nat-a let in" "$(syn_count nat-a in)" 0
    expect_eq "bare SYNs nat-b let in" "$(syn_count nat-b in)" 0
    [ "$(syn_count nat-a dropped)" -ge 1 ] || fail "nat-a dropped no SYN from host-b"
    [ "$(syn_count nat-b dropped)" -ge 1 ] || fail "nat-b dropped no SYN from host-a"
}

# ct_public_port CONNTRACK SRC SPORT DST: the public port a NAT gave the flow SRC:SPORT -> DST.
ct_public_port() {
    awk -v k="src=$2 dst=$4 sport=$3 " 'index($0, k) {
        for (i = NF; i > 0; i--) if ($i ~ /^dport=/) { sub("dport=", "", $i); print $i; exit } }' \
        <<<"$1"
}

# Delay on nat-a's WAN link shows in round trips from host-a to r1 (twice the one-way delay);
# host-b's undelayed path is the control.
case_env_delay() {
    local d=25
    topo_up --nat-a cone --nat-b cone --delay-a $d
    spawn r1 serve "$NSTOOL" serve "$R1_IP" 7001
    wait_listen r1 7001
    local a b
    a=$(run_in host-a "$NSTOOL" rtt "$R1_IP" 7001 --count 10)
    b=$(run_in host-b "$NSTOOL" rtt "$R1_IP" 7001 --count 10)
    note "host-a -> r1: $a"
    note "host-b -> r1: $b"
    local amin amed bmed want=$((2 * d * 1000))
    amin=$(field rtt_min_us "$a")
    amed=$(field rtt_med_us "$a")
    bmed=$(field rtt_med_us "$b")
    # The minimum is the propagation delay; load on the machine only adds jitter on top of it.
    [ "$amin" -ge $((want * 98 / 100)) ] || fail "host-a min RTT ${amin}us < ${want}us configured"
    [ "$amin" -le $((want + 10000)) ] || fail "host-a min RTT ${amin}us > ${want}us + 10ms"
    [ "$bmed" -le 10000 ] || fail "host-b (no delay) median RTT ${bmed}us > 10ms"
    note "RTT with ${d}ms each way: min ${amin}us, median ${amed}us (want ${want}us); control ${bmed}us"
}
