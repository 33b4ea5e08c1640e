#ifndef ATTRIB_VERSION_H
#define ATTRIB_VERSION_H
#define ATTRIB_VERSION "0.1.0"
#endif
