/*
 * X25519 (RFC 7748) on BoringSSL, with the one policy decision in one place: a
 * Diffie-Hellman result of all zeros (the peer sent a small-order point) is a
 * failure, as the Noise spec (§12.1) allows and go-libp2p's flynn/noise does.
 */
#ifndef RP_CRYPTO_X25519_H
#define RP_CRYPTO_X25519_H

#include <stdint.h>

/* RFC 7748 §5: keys and shared secrets are 32 bytes. */
#define RP_X25519_KEY_LEN 32

/* A fresh key pair from BoringSSL's RAND_bytes, into the caller's arrays. */
void rp_x25519_keypair(uint8_t pub[RP_X25519_KEY_LEN], uint8_t priv[RP_X25519_KEY_LEN]);

/* The public key of a given private key (clamping is part of the scalar multiplication). */
void rp_x25519_public(uint8_t pub[RP_X25519_KEY_LEN], const uint8_t priv[RP_X25519_KEY_LEN]);

/* shared = DH(priv, peer). 0, or RINGP2P_ECRYPTO when the result is all zeros. */
int rp_x25519_dh(uint8_t shared[RP_X25519_KEY_LEN], const uint8_t priv[RP_X25519_KEY_LEN],
                 const uint8_t peer[RP_X25519_KEY_LEN]);

#endif
