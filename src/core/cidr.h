/* Internal: lists of address ranges ("10.0.0.0/8, ::1, [fd00::]/8"), for
 * the PROXY protocol's trusted senders and the per-address limits'
 * exemptions. Sans I/O: parsing text and matching a sockaddr. */
#ifndef GMUD_CORE_CIDR_H
#define GMUD_CORE_CIDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "gmud/error.h"

enum { CIDR_MAX = 64 /* ranges in one list */ };

typedef struct cidr {
    uint8_t v6;        /* 0: IPv4 (4 bytes of addr), 1: IPv6 (16) */
    uint8_t bits;      /* prefix length */
    uint8_t addr[16];  /* the network, host bits cleared */
} cidr;

typedef struct cidr_list {
    size_t n;
    cidr v[CIDR_MAX];
} cidr_list;

/* Parses text: ranges separated by commas and/or spaces, each an IPv4 or
 * IPv6 address (IPv6 optionally in brackets) with an optional /bits; no
 * bits means the one address. NULL or "" gives an empty list. 0, or
 * GMUD_ERR_INVALID naming the range at fault. */
int cidr_list_parse(cidr_list *list, const char *text, gmud_error *err);

/* 1 if sa (AF_INET or AF_INET6; an IPv4-mapped IPv6 address is matched as
 * the IPv4 one) is in one of the list's ranges, else 0. */
int cidr_list_match(const cidr_list *list, const struct sockaddr *sa);

#endif
