# shellcheck shell=bash
# Circuit relay v2 behind NATs with the ringp2p tool (issue 6, cases 3 and 5): a relay that does
# not serve the hop protocol, and a relay that goes away while another one is configured.
# Each case_* function runs in its own shell with its own topology (run.sh).
#
# nat-b is symmetric in both cases: host-b reaches host-a through a relay, and a symmetric NAT
# guarantees that connection stays relayed (no hole punch can replace it), which is what the
# pings check.

HOP=/libp2p/circuit/relay/0.2.0/hop

# reservation_line NAME RELAY_ID OK SECONDS: waits for host NAME's first reservation event about
# relay RELAY_ID with "ok":OK (true, false, or any) and prints it.
reservation_line() {
    local ok=$3
    [ "$ok" != any ] || ok='(true|false)'
    local re='"event":"reservation","relay":"[^"]*/p2p/'$2'","ok":'$ok
    wait_for "$(out "$1")" "$re" "$4" ||
        fail "$1: no reservation event with ok:$3 for relay $2 within $4 s; its events:"$'\n'"$(
            grep '"event":"reservation"' "$(out "$1")" || true)"
    first_match "$(out "$1")" "$re"
}

# circuit_addr LINE RELAY_IP: the circuit address in the "addrs" of an ok reservation event that
# goes through RELAY_IP (RELAY/p2p/R/p2p-circuit/p2p/HOST).
circuit_addr() {
    local a
    a=$(json_strs addrs "$1" | grep -m1 "^/ip4/$2/tcp/" || true)
    [[ $a == */p2p-circuit/p2p/* ]] || fail "no circuit address through $2 in: $1"
    echo "$a"
}

# (3) relay service off. r1 runs a plain node: host-a's reservation on it is refused with an
# error naming the relay and the hop protocol it does not serve. Then r1 is restarted, same key
# and port, with --relay-server (the positive control): host-a's client retries on its own (2 s
# backoff), holds a reservation, advertises the circuit address, and host-b, behind its own NAT,
# pings host-a through it. The relay logs the reservation and the circuit.
case_relay_service_off() {
    need_ringp2p
    topo_up --nat-a cone --nat-b symmetric
    local key=$NT_DIR/.r1.key rid aid line err circ # a dot file: not dumped with the logs
    run_in r1 "$RINGP2P" keygen --out "$key" >/dev/null
    spawn r1 r1-plain "$RINGP2P" listen --key "$key" --listen "/ip4/$R1_IP/tcp/4001" \
        --no-autonat --json
    rid=$(node_id r1-plain)
    spawn host-a a "$RINGP2P" listen --listen /ip4/0.0.0.0/tcp/4001 \
        --relay "/ip4/$R1_IP/tcp/4001/p2p/$rid" --no-autonat --json
    aid=$(node_id a)

    line=$(reservation_line a "$rid" any 10)
    note "host-a, relay service off: $line"
    expect_eq "reservation on r1 without the relay service: ok" "$(json_val ok "$line")" false
    expect_eq "reservation on r1 without the relay service: lost" "$(json_val lost "$line")" false
    err=$(json_val error "$line")
    [[ $err == *"$rid"* && $err == *"reservation refused"* && $err == *"does not serve $HOP"* ]] ||
        fail "refusal error should name relay $rid, 'reservation refused' and '$HOP'; got '$err'"
    note "the error names the relay, the refusal and $HOP"
    grep -q '"ok":true' "$(out a)" &&
        fail "host-a reported a reservation on a relay without the service"
    stop r1-plain || fail "r1 (plain) exited $?"

    spawn r1 r1 "$RINGP2P" listen --key "$key" --listen "/ip4/$R1_IP/tcp/4001" --relay-server \
        --no-autonat --json
    expect_eq "r1 restarted with the same key" "$(node_id r1)" "$rid"
    line=$(reservation_line a "$rid" true 15)
    note "host-a, relay service on: $line"
    circ=$(circuit_addr "$line" "$R1_IP")
    expect_eq "circuit address" "$circ" "/ip4/$R1_IP/tcp/4001/p2p/$rid/p2p-circuit/p2p/$aid"
    wait_for "$(out r1)" '"event":"relay-reservation","peerId":"'"$aid"'"' 5 ||
        fail "r1 logged no reservation by host-a ($aid)"

    expect_pings_relayed host-b "$circ" 3
    wait_for "$(out a)" '"event":"connection".*"direction":"inbound","relayed":true' 5 ||
        fail "host-a saw no inbound relayed connection"
    wait_for "$(out r1)" '"event":"relay-circuit".*"dst":"'"$aid"'"' 5 ||
        fail "r1 logged no circuit to host-a"
    note "r1: $(first_match "$(out r1)" '"event":"relay-circuit"')"
    stop a || fail "host-a exited $?"
    stop r1 || fail "r1 exited $?"
}

# (5) A relay that goes away. host-a is configured with two relays. The relay client reserves on
# every configured relay at once and independently (relay_client.c: one reservation per relay,
# each with its own renewal and backoff; there is no fail-over mode that waits for one relay to
# fail before using the next). So "reserves elsewhere" is: the reservation on r2, made at start,
# is still held and working after r1 is gone. r1's node is killed (SIGKILL: no goodbye, the kernel
# closes its sockets); host-a reports the loss of the r1 reservation (lost:true naming r1), r2's
# reservation sees no failure, and host-b pings host-a through r2's circuit address; host-a's
# identify, which listed circuit addresses through both relays before, no longer lists one
# through r1.
case_relay_goes_away() {
    need_ringp2p
    topo_up --nat-a cone --nat-b symmetric
    local r1id r2id aid l1 l2 circ1 circ2 line o la
    spawn r1 r1 "$RINGP2P" listen --listen "/ip4/$R1_IP/tcp/4001" --relay-server --no-autonat --json
    spawn r2 r2 "$RINGP2P" listen --listen "/ip4/$R2_IP/tcp/4001" --relay-server --no-autonat --json
    r1id=$(node_id r1)
    r2id=$(node_id r2)
    spawn host-a a "$RINGP2P" listen --listen /ip4/0.0.0.0/tcp/4001 \
        --relay "/ip4/$R1_IP/tcp/4001/p2p/$r1id" --relay "/ip4/$R2_IP/tcp/4001/p2p/$r2id" \
        --no-autonat --json
    aid=$(node_id a)
    l1=$(reservation_line a "$r1id" true 10)
    l2=$(reservation_line a "$r2id" true 10)
    circ1=$(circuit_addr "$l1" "$R1_IP")
    circ2=$(circuit_addr "$l2" "$R2_IP")
    note "host-a holds reservations on both relays: $circ1 and $circ2"
    o=$(run_in host-b "$RINGP2P" identify "$circ2" --timeout 5 --json 2>&1) ||
        fail "identify of host-a through r2 failed: $o"
    la=$(json_strs listenAddrs "$o")
    if ! grep -qF -- "/p2p/$r1id/p2p-circuit" <<<"$la" ||
        ! grep -qF -- "/p2p/$r2id/p2p-circuit" <<<"$la"; then
        fail "host-a's identify should list circuit addresses through r1 and r2:"$'\n'"$la"
    fi

    { stop r1 KILL || true; } 2>/dev/null # its status is the KILL's; no "Killed" from bash
    line=$(reservation_line a "$r1id" false 10)
    note "host-a after r1 died: $line"
    expect_eq "r1 reservation lost" "$(json_val lost "$line")" true
    [[ $(json_val error "$line") == *"$r1id"*"lost"* ]] ||
        fail "the loss should name relay $r1id and say lost; got '$(json_val error "$line")'"

    expect_pings_relayed host-b "$circ2" 3
    o=$(run_in host-b "$RINGP2P" identify "$circ2" --timeout 5 --json 2>&1) ||
        fail "identify of host-a through r2 failed: $o"
    la=$(json_strs listenAddrs "$o")
    note "host-a's listen addresses (identify through r2):"$'\n'"$la"
    grep -qF -- "/p2p/$r2id/p2p-circuit" <<<"$la" ||
        fail "host-a's identify lists no circuit address through r2"
    grep -qF -- "/p2p/$r1id/p2p-circuit" <<<"$la" &&
        fail "host-a's identify still lists a circuit address through the dead r1"
    line=$(first_match "$(out a)" '"event":"reservation","relay":"[^"]*/p2p/'"$r2id"'","ok":false')
    [ -z "$line" ] || fail "the r2 reservation failed meanwhile: $line"
    stop a || fail "host-a exited $?"
    stop r2 || fail "r2 exited $?"
}
