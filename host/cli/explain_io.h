/* Image path lists for the commands that take many images: cli.h's
 * cli_paths (the library's at_paths, io/paths.h). */
#ifndef ATTRIB_CLI_EXPLAIN_IO_H
#define ATTRIB_CLI_EXPLAIN_IO_H

#include "cli.h"

#endif
