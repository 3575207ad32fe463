/*
 * Peer ID text parsing (peer-ids.md "String representation", RFC 0001).
 *
 * Invariants: a parsed ID prints in both forms, and each form parses back to
 * the same ID; its bytes pass ringp2p_peer_id_from_bytes; an identity ID gives
 * back a key that matches it, a sha2-256 ID reports RINGP2P_ENOENT.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ringp2p/key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void reparse(const char *s, ssize_t n, const ringp2p_peer_id *want)
{
    ringp2p_peer_id id;
    if (n <= 0 || (size_t)n != strlen(s)) abort();
    if (ringp2p_peer_id_parse(s, (size_t)n, &id, NULL) != 0) abort();
    if (!ringp2p_peer_id_equal(&id, want)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ringp2p_peer_id id;
    ringp2p_errinfo ei = { 0 };
    int r = ringp2p_peer_id_parse((const char *)data, size, &id, &ei);
    if (r != 0) {
        if (r > 0 || ei.code != r || ei.msg[0] == '\0') abort();
        return 0;
    }
    char s[RINGP2P_PEER_ID_STR_MAX];
    reparse(s, ringp2p_peer_id_to_string(&id, s, sizeof(s)), &id);
    reparse(s, ringp2p_peer_id_to_cid_string(&id, s, sizeof(s)), &id);

    ringp2p_peer_id again;
    if (ringp2p_peer_id_from_bytes(id.bytes, id.len, &again, NULL) != 0) abort();
    if (!ringp2p_peer_id_equal(&again, &id)) abort();

    ringp2p_pubkey *pk = NULL;
    r = ringp2p_peer_id_extract_pubkey(&id, &pk);
    if (id.bytes[0] == 0x00) {
        if (r != 0 || !ringp2p_peer_id_matches(&id, pk)) abort();
        ringp2p_pubkey_free(pk);
    } else if (r != RINGP2P_ENOENT || pk != NULL) {
        abort();
    }
    return 0;
}
