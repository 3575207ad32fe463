/*
 * ringp2p: libp2p in C11 for Linux, on io_uring.
 *
 * The one header users include. Conventions for every function: 0 or a byte
 * count on success, a negative RINGP2P_E* code on failure (ringp2p_strerror);
 * objects come in _new/_free (or _parse/_free) pairs and each comment says who
 * owns every buffer and until when.
 */
#ifndef RINGP2P_H
#define RINGP2P_H

#include "ringp2p/error.h"
#include "ringp2p/key.h"
#include "ringp2p/log.h"
#include "ringp2p/multiaddr.h"
#include "ringp2p/node.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RINGP2P_VERSION_MAJOR 0
#define RINGP2P_VERSION_MINOR 1
#define RINGP2P_VERSION_PATCH 0
#define RINGP2P_VERSION       "0.1.0"

/* The library's version string, which may differ from the header's RINGP2P_VERSION. */
RINGP2P_API const char *ringp2p_version(void);

#ifdef __cplusplus
}
#endif
#endif
