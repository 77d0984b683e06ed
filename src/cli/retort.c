/* retort.c — placeholder dispatch; replaced as subcommands land. */
#include <stdio.h>
int main(void) { puts("retort"); return 0; }
