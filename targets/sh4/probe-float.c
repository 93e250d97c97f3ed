/* Float-to-integer conversions through libgcc's helpers. Debian 12's sh4
 * libgcc.a has them miscompiled (a ">= 2^31" test folded into one inverted
 * branch): (long long)7.9 came out as 8 and busybox `sleep 0.5` returned at
 * once. libgcc-fix.c replaces them; this probe proves the replacement is
 * linked. volatile keeps the compiler from folding the conversions. */
#include <stdio.h>

int main(void)
{
	volatile double a = 7.9, b = 0.5, c = 3000000000.5, d = -7.9;
	volatile float e = 7.9f;
	long long ia = (long long)a, ib = (long long)b, id = (long long)d, ie = (long long)e;
	unsigned long long ic = (unsigned long long)c;
	unsigned int uc = (unsigned int)c;
	if (ia != 7 || ib != 0 || ic != 3000000000ULL || uc != 3000000000U || id != -7 || ie != 7) {
		printf("probe-float: WRONG %lld %lld %llu %u %lld %lld\n", ia, ib, ic, uc, id, ie);
		return 1;
	}
	printf("probe-float: OK\n");
	return 0;
}
