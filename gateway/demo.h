/*
 * demo.h - `onegate demo`: a loopback-only demonstration with a throw-away
 * test PKI, built-in TLS demo back ends and rules/examples/demo.conf.
 */
#ifndef ONEGATE_DEMO_H
#define ONEGATE_DEMO_H

/* argv[0] is "demo". Returns the process exit code. */
int demo_main(int argc, char **argv);

#endif
