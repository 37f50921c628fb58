/*
 * herd_shell_guard: the coordinator's PostgreSQL refuses to run a statement that reads or writes
 * the empty shell of a distributed or reference table.
 *
 * herd keeps each distributed table on the coordinator as a shell: same definition, no rows (they
 * live on the workers). herd plans the statements clients send it, but PostgreSQL itself can reach
 * a shell behind herd's back: a function that builds its query with EXECUTE, a trigger, a column
 * default, a rule, a foreign-key check. Such a read would silently see no rows, a wrong answer;
 * this guard turns it into an error instead.
 *
 * A shell is a table carrying herd's statement trigger `herd_shell_guard` (which already refuses
 * writes, TRUNCATE included); the trigger list is in the relation cache, so the check costs a hash
 * lookup per table a statement names. EXPLAIN without ANALYZE runs nothing and is let through.
 *
 * herd.mark_shell(regclass) (herd_mark_shell below) makes that trigger an internal one, as
 * PostgreSQL makes a foreign key's: pg_dump and psql's \d leave it out, so a dump of a herd
 * database restores into a plain PostgreSQL without it. Its name gets the trigger's OID appended.
 *
 * `herd.shell_guard = off` lets herd's own DDL through (PostgreSQL validates a new foreign key or
 * a CHECK by querying the table); clients that turn it off read empty shells on purpose.
 *
 * Loaded through shared_preload_libraries by the bot that runs the coordinator's PostgreSQL.
 */
#include "postgres.h"

#include "catalog/pg_class.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"

PG_MODULE_MAGIC_EXT(.name = "herd_shell_guard", .version = "1.0");

#define SHELL_TRIGGER_NAME "herd_shell_guard"

static ExecutorStart_hook_type previous_executor_start = NULL;
static bool guard_enabled = true;

/* True when `relid` is a table with herd's shell trigger. */
static bool
is_shell(Oid relid)
{
	Relation	rel = RelationIdGetRelation(relid);
	bool		shell = false;

	if (!RelationIsValid(rel))
		return false;
	if (rel->rd_rel->relkind == RELKIND_RELATION && rel->trigdesc != NULL)
	{
		for (int i = 0; i < rel->trigdesc->numtriggers; i++)
		{
			/* herd_shell_guard, or herd_shell_guard_<oid> when internal */
			if (strncmp(rel->trigdesc->triggers[i].tgname, SHELL_TRIGGER_NAME, strlen(SHELL_TRIGGER_NAME)) == 0)
			{
				shell = true;
				break;
			}
		}
	}
	RelationClose(rel);
	return shell;
}

static void
refuse_shells(PlannedStmt *statement)
{
	ListCell   *cell;

	foreach(cell, statement->rtable)
	{
		RangeTblEntry *entry = lfirst_node(RangeTblEntry, cell);

		if (entry->rtekind != RTE_RELATION || !is_shell(entry->relid))
			continue;
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("\"%s.%s\" is distributed: the coordinator's PostgreSQL holds only its empty shell",
						get_namespace_name(get_rel_namespace(entry->relid)),
						get_rel_name(entry->relid)),
				 errdetail("A function, trigger, default, rule or foreign key evaluated on the coordinator "
						   "reached the table, and would have seen no rows."),
				 errhint("Send the query that reads the table to herd directly (herd plans views over "
						 "distributed tables, and functions whose body names them are refused before they run).")));
	}
}

static void
guarded_executor_start(QueryDesc *query, int eflags)
{
	if (guard_enabled && (eflags & EXEC_FLAG_EXPLAIN_ONLY) == 0)
		refuse_shells(query->plannedstmt);
	if (previous_executor_start)
		previous_executor_start(query, eflags);
	else
		standard_ExecutorStart(query, eflags);
}

PG_FUNCTION_INFO_V1(herd_mark_shell);

/*
 * herd.mark_shell(regclass): gives a table that has just become a shell its guard trigger,
 * internal (BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE, for each statement, calling
 * herd.refuse_shell_write()). Only the table's owner may; a table marked already is left as is.
 */
Datum
herd_mark_shell(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	CreateTrigStmt *stmt;
	List	   *function = list_make2(makeString("herd"), makeString("refuse_shell_write"));
	char	   *schema = get_namespace_name(get_rel_namespace(relid));
	char	   *name = get_rel_name(relid);

	if (schema == NULL || name == NULL)
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE), errmsg("relation with OID %u does not exist", relid)));
	if (!object_ownercheck(RelationRelationId, relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, name);
	if (is_shell(relid))
		PG_RETURN_VOID();

	stmt = makeNode(CreateTrigStmt);
	stmt->trigname = SHELL_TRIGGER_NAME;
	stmt->relation = makeRangeVar(schema, name, -1);
	stmt->funcname = function;
	stmt->row = false;
	stmt->timing = TRIGGER_TYPE_BEFORE;
	stmt->events = TRIGGER_TYPE_INSERT | TRIGGER_TYPE_UPDATE | TRIGGER_TYPE_DELETE | TRIGGER_TYPE_TRUNCATE;
	CreateTrigger(stmt, NULL, relid, InvalidOid, InvalidOid, InvalidOid,
				  LookupFuncName(function, 0, NULL, false), InvalidOid, NULL, true, false);
	PG_RETURN_VOID();
}

void
_PG_init(void)
{
	DefineCustomBoolVariable("herd.shell_guard",
							 "Refuses statements that read or write the empty shell of a distributed table.",
							 NULL,
							 &guard_enabled,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	previous_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = guarded_executor_start;
}
