/* rp_list — an intrusive doubly linked list (curl's llist, the kernel's
 * list_head): the node lives inside the element, so linking and unlinking
 * never allocate and an element knows in O(1) whether it is on a list.
 *
 *   struct job { rp_list_t link; ... };
 *   rp_list_t ready;  rp_list_init(&ready);
 *   rp_list_push_tail(&ready, &job->link);
 *   struct job *j = RP_LIST_ENTRY(rp_list_first(&ready), struct job, link);
 *   rp_list_unlink(&j->link);
 *
 * A head is a sentinel made by rp_list_init. A node that is zeroed or was
 * unlinked is on no list (rp_list_linked is false) and may be unlinked
 * again, so cleanup code need not know whether it was queued. One element
 * may sit on several lists through several nodes.
 *
 * Thread-safety: none; the list's owner serialises access.
 */
#ifndef RP_LIST_H
#define RP_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct rp_list {
    struct rp_list *prev, *next;
} rp_list_t;

/* The element that holds node ptr in its member field. */
#define RP_LIST_ENTRY(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static inline void rp_list_init(rp_list_t *head)
{
    head->prev = head->next = head;
}

static inline bool rp_list_empty(const rp_list_t *head)
{
    return head->next == head;
}

/* true when node is on a list (false for a zeroed or unlinked node). */
static inline bool rp_list_linked(const rp_list_t *node)
{
    return node->next != NULL && node->next != node;
}

static inline void rp_list_insert_after(rp_list_t *pos, rp_list_t *node)
{
    node->prev = pos;
    node->next = pos->next;
    pos->next->prev = node;
    pos->next = node;
}

static inline void rp_list_push_tail(rp_list_t *head, rp_list_t *node)
{
    rp_list_insert_after(head->prev, node);
}

static inline void rp_list_push_head(rp_list_t *head, rp_list_t *node)
{
    rp_list_insert_after(head, node);
}

/* Take node off its list; a no-op when it is on none. */
static inline void rp_list_unlink(rp_list_t *node)
{
    if (!rp_list_linked(node))
        return;
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node->next = node;
}

/* First / last node, or NULL when the list is empty. */
static inline rp_list_t *rp_list_first(const rp_list_t *head)
{
    return rp_list_empty(head) ? NULL : head->next;
}

static inline rp_list_t *rp_list_last(const rp_list_t *head)
{
    return rp_list_empty(head) ? NULL : head->prev;
}

/* Unlink and return the first node, or NULL when empty. */
static inline rp_list_t *rp_list_pop_head(rp_list_t *head)
{
    rp_list_t *n = rp_list_first(head);

    if (n)
        rp_list_unlink(n);
    return n;
}

/* Walk the list; the body may unlink (and free) the current node. */
#define RP_LIST_FOREACH_SAFE(node, tmp, head)                          \
    for ((node) = (head)->next, (tmp) = (node)->next; (node) != (head); \
         (node) = (tmp), (tmp) = (node)->next)

#endif
