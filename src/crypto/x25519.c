#include "crypto/x25519.h"

#include <openssl/curve25519.h>
#include <openssl/err.h>

#include "ringp2p/error.h"

_Static_assert(RP_X25519_KEY_LEN == X25519_PRIVATE_KEY_LEN, "X25519 private key length");
_Static_assert(RP_X25519_KEY_LEN == X25519_PUBLIC_VALUE_LEN, "X25519 public key length");
_Static_assert(RP_X25519_KEY_LEN == X25519_SHARED_KEY_LEN, "X25519 shared key length");

void rp_x25519_keypair(uint8_t pub[RP_X25519_KEY_LEN], uint8_t priv[RP_X25519_KEY_LEN])
{
    X25519_keypair(pub, priv);
}

void rp_x25519_public(uint8_t pub[RP_X25519_KEY_LEN], const uint8_t priv[RP_X25519_KEY_LEN])
{
    X25519_public_from_private(pub, priv);
}

int rp_x25519_dh(uint8_t shared[RP_X25519_KEY_LEN], const uint8_t priv[RP_X25519_KEY_LEN],
                 const uint8_t peer[RP_X25519_KEY_LEN])
{
    if (!X25519(shared, priv, peer)) {
        ERR_clear_error();
        return RINGP2P_ECRYPTO;
    }
    return 0;
}
