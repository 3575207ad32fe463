/* The README's "library in five lines", built against an installed ringp2p via pkg-config. */
#include <ringp2p/ringp2p.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    /* The README shows these five lines exactly as they are here. */
    // clang-format off
    ringp2p_privkey *key;       ringp2p_privkey_generate(RINGP2P_KEY_ED25519, &key);
    ringp2p_peer_id id;         ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(key), &id);
    char text[RINGP2P_PEER_ID_STR_MAX];  ringp2p_peer_id_to_string(&id, text, sizeof text);
    ringp2p_multiaddr *ma;      ringp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/4001", &ma, NULL);
    ringp2p_multiaddr_free(ma); ringp2p_privkey_free(key);
    // clang-format on

    /* Check what the five lines did, so this program can fail. */
    if (strncmp(text, "12D3KooW", 8) != 0) {
        fprintf(stderr, "unexpected peer ID '%s'\n", text);
        return 1;
    }
    printf("%s\n", text);
    return 0;
}
