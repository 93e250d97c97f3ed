/* The C library links, starts, formats and exits. */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

int main(void)
{
	char buf[32];
	snprintf(buf, sizeof buf, "%d-%s", 42, "hello");
	if (strcmp(buf, "42-hello") != 0)
		return 1;
	char *p = malloc(1000);
	if (!p)
		return 2;
	memset(p, 'x', 1000);
	free(p);
	printf("hello: OK\n");
	return 0;
}
