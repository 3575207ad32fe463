#include <stdio.h>

#include "ringp2p/ringp2p.h"

int main(void)
{
    printf("ringp2p %s\n", ringp2p_version());
    return 0;
}
