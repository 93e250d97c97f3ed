/* probe-treg.c -- demonstrates the gcc 12.2.0 sh4 miscompilation that
 * packages/gcc/sh-treg-combine-predicate-types.patch fixes in the compiler
 * built from source, and treg-combine-plugin.cc works around in Debian 12's
 * sh4-linux-gnu-gcc.
 *
 * At -O1 and above the SH RTL pass sh_treg_combine2 deletes the load of *p
 * and the "tst" that sets the T bit in check() below, so the conditional
 * branch tests whatever T the caller happened to leave behind.
 *
 * The program needs no libc (Debian's sh4 glibc is itself miscompiled):
 * it provides _start, and talks to the kernel with raw "trapa" syscalls.
 * It prints "probe-treg: OK" and exits 0 when check() was compiled
 * correctly, otherwise prints "probe-treg: MISCOMPILED" and exits 1.
 *
 * probe-cflags: -nostdlib -ffreestanding
 *
 * Build and run by hand:
 *   sh4-linux-gnu-gcc -O2 -static -nostdlib -ffreestanding -o probe probe-treg.c
 *   qemu-sh4-static ./probe            # -> MISCOMPILED, exit 1
 *   sh4-linux-gnu-gcc -O2 -fplugin=$PWD/treg_combine.so -static -nostdlib \
 *       -ffreestanding -o probe probe-treg.c
 *   qemu-sh4-static ./probe            # -> OK, exit 0
 */

#define SYS_exit_group 252   /* asm/unistd_32.h on sh */
#define SYS_write 4

/* SH Linux syscall ABI: number in r3, args in r4.., "trapa #0x10+nargs",
 * result in r0. */
static long
sys3 (long nr, long a, long b, long c)
{
  register long r3 __asm__ ("r3") = nr;
  register long r4 __asm__ ("r4") = a;
  register long r5 __asm__ ("r5") = b;
  register long r6 __asm__ ("r6") = c;
  __asm__ volatile ("trapa #0x13"
                    : "+r" (r3)
                    : "r" (r4), "r" (r5), "r" (r6)
                    : "memory", "r0", "t");
  return r3;
}

static void
say (const char *s)
{
  long n = 0;
  while (s[n])
    n++;
  sys3 (SYS_write, 1, (long) s, n);
}

static void __attribute__ ((noreturn))
quit (int status)
{
  for (;;)
    sys3 (SYS_exit_group, status, 0, 0);
}

volatile int calls;

__attribute__ ((noipa)) void
hit (void)
{
  calls++;
}

/* The function from the bug report: "if (*p) foo();". */
__attribute__ ((noipa)) void
check (int *p)
{
  if (*p)
    hit ();
}

/* Called with T set (1) or clear (0) right before check(), so a
 * miscompiled check() follows the caller's stale T bit instead of *p. */
__attribute__ ((noipa)) void
run (int *p, int t)
{
  if (t)
    __asm__ volatile ("sett" ::: "t");
  else
    __asm__ volatile ("clrt" ::: "t");
  check (p);
}

/* Returns 1 when check(&v) called hit() exactly when v != 0, for the
 * given state of T on entry. */
static int
ok_for (int v, int t)
{
  int before = calls;
  run (&v, t);
  return (calls - before) == (v != 0);
}

void __attribute__ ((noreturn))
_start (void)
{
  int good = ok_for (0, 0) & ok_for (0, 1) & ok_for (1, 0) & ok_for (1, 1);

  if (good)
    {
      say ("probe-treg: OK\n");
      quit (0);
    }
  say ("probe-treg: MISCOMPILED\n");
  quit (1);
}
