// treg-combine-plugin.cc -- GCC plugin that switches off the SH "sh_treg_combine"
// RTL passes in Debian 12's sh4-linux-gnu-gcc (12.2.0).
//
// WHY THIS EXISTS
// Debian 12's sh4 cross compiler miscompiles ordinary code at -O1 and above.
// For
//     extern void foo(void);
//     void a(int *p) { if (*p) foo(); }
// the generated code branches on a stale T bit: the load of *p and the
// "tst" that should set T before the conditional branch are deleted by the
// SH-specific RTL pass sh_treg_combine2.  Everything built with it (libc,
// busybox, the kernel) then misbehaves in subtle ways -- Debian's own sh4
// libc.a already contains such code, which is why rhbuild uses musl.
// Debian's sh4 crtbeginT.o (frame_dummy) and libgcc.a (__fixunsdfdi and the
// other float->integer helpers: an "x >= C" test, fcmp/gt + fcmp/eq, is
// folded into a single branch of the wrong sense) are affected too, so
// anything linked for sh4 must avoid them or rebuild them with this plugin.
//
// The obvious workaround, -fdisable-rtl-sh_treg_combine2, is refused: the SH
// backend registers these passes (sh_treg_combine1/2/3) dynamically, after
// command-line options have been processed, so the pass does not exist yet
// when -fdisable-* is parsed.  A plugin, however, is consulted every time
// the pass manager evaluates a pass gate (PLUGIN_OVERRIDE_GATE), so we simply
// answer "don't run" for every pass whose name starts with "sh_treg_combine".
// These passes are pure optimisations (they fold redundant T-bit
// computations), so skipping them only costs a little code size/speed.
//
// Build (host g++, against the *target* compiler's plugin headers):
//   PLUGDIR=$(sh4-linux-gnu-gcc -print-file-name=plugin)
//   g++ -shared -fPIC -fno-rtti -O2 -I$PLUGDIR/include \
//       -o treg_combine.so treg-combine-plugin.cc
// Use:
//   sh4-linux-gnu-gcc -fplugin=/path/treg_combine.so ...
// (No dashes in the .so name: GCC takes the plugin name from the file name
// and splits -fplugin-arg-NAME-KEY at the first dash.)
// Optional: -fplugin-arg-treg_combine-verbose prints each pass that
// was switched off (one line per function, on stderr).

#include "gcc-plugin.h"
#include "plugin-version.h"
#include "tree.h"
#include "tree-pass.h"

#include <cstdio>
#include <cstring>

// GCC refuses to load plugins that do not declare this symbol.
int plugin_is_GPL_compatible;

static const char prefix[] = "sh_treg_combine";
static bool verbose = false;

// PLUGIN_OVERRIDE_GATE callback.  gcc_data points at the bool the pass
// manager is about to use as the gate result; current_pass is the pass whose
// gate is being evaluated.
static void
override_gate (void *gcc_data, void * /*user_data*/)
{
  bool *gate_status = static_cast<bool *> (gcc_data);
  if (!gate_status || !current_pass || !current_pass->name)
    return;
  if (strncmp (current_pass->name, prefix, sizeof prefix - 1) != 0)
    return;
  if (verbose && *gate_status)
    fprintf (stderr, "treg-combine-plugin: skipping %s in %s\n",
             current_pass->name,
             current_function_decl
               ? IDENTIFIER_POINTER (DECL_NAME (current_function_decl))
               : "?");
  *gate_status = false;
}

int
plugin_init (struct plugin_name_args *info, struct plugin_gcc_version *version)
{
  // The plugin pokes at GCC-internal structures (opt_pass), so only run in
  // the exact compiler version whose headers it was built against.
  if (!plugin_default_version_check (version, &gcc_version))
    {
      fprintf (stderr, "treg-combine-plugin: built for GCC %s, "
               "refusing to load into GCC %s\n",
               gcc_version.basever, version->basever);
      return 1;
    }

  for (int i = 0; i < info->argc; i++)
    if (strcmp (info->argv[i].key, "verbose") == 0)
      verbose = true;

  static struct plugin_info pinfo = {
    "1", "Disable the miscompiling SH sh_treg_combine* RTL passes"
  };
  register_callback (info->base_name, PLUGIN_INFO, NULL, &pinfo);
  register_callback (info->base_name, PLUGIN_OVERRIDE_GATE, override_gate,
                     NULL);
  return 0;
}
