#include "ringp2p/ringp2p.h"

RINGP2P_API const char *ringp2p_version(void)
{
    return RINGP2P_VERSION;
}
