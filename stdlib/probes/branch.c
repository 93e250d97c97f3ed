/* Optimised conditional branches on loaded values: the shape of code that
 * compiler passes deleting a load-and-test before a branch get wrong. */
#include <stdio.h>

static volatile int calls;

__attribute__((noinline)) void bump(void) { calls++; }

__attribute__((noinline)) void maybe(int *p)
{
	if (*p)
		bump();
}

int main(void)
{
	int zero = 0, one = 1;
	for (int i = 0; i < 10; i++) {
		maybe(&zero);
		maybe(&one);
	}
	if (calls != 10) {
		printf("branch: wrong count %d\n", calls);
		return 1;
	}
	printf("branch: OK\n");
	return 0;
}
