import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Types;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.Properties;

/**
 * Drives herd's SQL port with pgjdbc, the PostgreSQL JDBC driver, as a Java application would.
 *
 * <p>Run with the source launcher: {@code java -cp postgresql.jar JdbcCheck.java <jdbc-url> <password>}.
 * Prints one JSON line per check, {@code {"check":"<name>","ok":true|false,"detail":"..."}}, and
 * exits 1 when any check failed. Each check runs even when an earlier one failed.
 */
public class JdbcCheck {
  private static String url;
  private static String password;
  private static boolean failed;

  interface Check {
    String run(Connection conn) throws Exception;
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 2) {
      System.err.println("usage: java -cp postgresql.jar JdbcCheck.java <jdbc-url> <password>");
      System.exit(2);
    }
    url = args[0];
    password = args[1];
    check("connect", JdbcCheck::connect);
    check("wrong-password", c -> wrongPassword());
    check("protocol-3.2", c -> protocol32());
    check("simple-statement", JdbcCheck::simpleStatement);
    check("prepared-types", JdbcCheck::preparedTypes);
    check("server-prepare", JdbcCheck::serverPrepare);
    check("commit", JdbcCheck::commit);
    check("rollback", JdbcCheck::rollback);
    check("batch", JdbcCheck::batch);
    check("fetch-size", JdbcCheck::fetchSize);
    check("error-sqlstate", JdbcCheck::errorSqlState);
    check("error-in-transaction", JdbcCheck::errorInTransaction);
    check("cancel", JdbcCheck::cancel);
    check("metadata", JdbcCheck::metadata);
    check("current-schema", JdbcCheck::currentSchema);
    System.exit(failed ? 1 : 0);
  }

  /** A new connection; `settings` are connection properties as name, value pairs. */
  static Connection open(String... settings) throws SQLException {
    Properties props = new Properties();
    props.setProperty("password", password);
    for (int i = 0; i + 1 < settings.length; i += 2) props.setProperty(settings[i], settings[i + 1]);
    return DriverManager.getConnection(url, props);
  }

  /** Runs one check on a fresh connection and prints its result line. */
  static void check(String name, Check body) {
    String detail;
    boolean ok;
    try (Connection conn = open()) {
      detail = body.run(conn);
      ok = true;
    } catch (Throwable e) {
      ok = false;
      failed = true;
      detail = describe(e);
    }
    System.out.println(
        "{\"check\":" + json(name) + ",\"ok\":" + ok + ",\"detail\":" + json(detail == null ? "" : detail) + "}");
  }

  static String describe(Throwable e) {
    StringBuilder text = new StringBuilder(e.getClass().getSimpleName() + ": " + e.getMessage());
    if (e instanceof SQLException && ((SQLException) e).getSQLState() != null) {
      text.append(" [SQLState ").append(((SQLException) e).getSQLState()).append(']');
    }
    if (e.getCause() != null && e.getCause() != e) text.append("; caused by ").append(describe(e.getCause()));
    return text.toString();
  }

  static void expect(Object actual, Object expected, String what) {
    if (!Objects.equals(actual, expected)) {
      throw new AssertionError(what + ": expected <" + expected + "> but got <" + actual + ">");
    }
  }

  /** A new, empty table (dropped first, so that the program can run again on the same cluster). */
  static void createTable(Connection conn, String name, String columns) throws SQLException {
    try (Statement st = conn.createStatement()) {
      st.execute("DROP TABLE IF EXISTS " + name);
      st.execute("CREATE TABLE " + name + " (" + columns + ")");
    }
  }

  static int count(Connection conn, String sql) throws SQLException {
    try (Statement st = conn.createStatement();
        ResultSet rs = st.executeQuery(sql)) {
      rs.next();
      return rs.getInt(1);
    }
  }

  static String connect(Connection conn) throws SQLException {
    expect(conn.isValid(5), true, "isValid");
    DatabaseMetaData meta = conn.getMetaData();
    expect(meta.getDatabaseMajorVersion(), 18, "server major version");
    // startup parameters reach PostgreSQL
    try (Connection other = open("ApplicationName", "jdbc check", "options", "-c statement_timeout=4321");
        Statement st = other.createStatement();
        ResultSet rs =
            st.executeQuery("SELECT current_setting('application_name'), current_setting('statement_timeout')")) {
      rs.next();
      expect(rs.getString(1), "jdbc check", "application_name");
      expect(rs.getString(2), "4321ms", "statement_timeout from options");
    }
    return meta.getDatabaseProductVersion() + " via " + meta.getDriverName() + " " + meta.getDriverVersion();
  }

  static String protocol32() throws SQLException {
    // pgjdbc asks for protocol 3.2; a server that speaks only 3.0 answers NegotiateProtocolVersion
    try (Connection conn = open("protocolVersion", "3.2")) {
      expect(count(conn, "SELECT 32"), 32, "a query");
    }
    return null;
  }

  /**
   * Two distributed tables of one name in two schemas: currentSchema= (a search_path in the
   * startup packet) decides which one a prepared SELECT reads and an UPDATE changes.
   */
  static String currentSchema(Connection conn) throws SQLException {
    try (Statement st = conn.createStatement()) {
      st.execute("DROP SCHEMA IF EXISTS jdbc_s2 CASCADE");
      st.execute("DROP TABLE IF EXISTS jdbc_named");
      st.execute("CREATE SCHEMA jdbc_s2");
      st.execute("CREATE TABLE public.jdbc_named (id int PRIMARY KEY, v text)");
      st.execute("CREATE TABLE jdbc_s2.jdbc_named (id int PRIMARY KEY, v text)");
      st.execute("SELECT create_distributed_table('public.jdbc_named', 'id')");
      st.execute("SELECT create_distributed_table('jdbc_s2.jdbc_named', 'id')");
      st.execute("INSERT INTO public.jdbc_named VALUES (1, 'public')");
      st.execute("INSERT INTO jdbc_s2.jdbc_named VALUES (1, 's2')");
    }
    try (Connection s2 = open("currentSchema", "jdbc_s2,public")) {
      for (int i = 0; i < 6; i++) { // past prepareThreshold: the server-side statement too
        try (PreparedStatement ps = s2.prepareStatement("SELECT v FROM jdbc_named WHERE id = ?")) {
          ps.setInt(1, 1);
          try (ResultSet rs = ps.executeQuery()) {
            expect(rs.next(), true, "a row");
            expect(rs.getString(1), "s2", "the row of jdbc_s2's table");
          }
        }
      }
      try (PreparedStatement ps = s2.prepareStatement("UPDATE jdbc_named SET v = ? WHERE id = ?")) {
        ps.setString(1, "s2 changed");
        ps.setInt(2, 1);
        expect(ps.executeUpdate(), 1, "rows updated");
      }
    }
    try (Statement st = conn.createStatement();
        ResultSet rs =
            st.executeQuery(
                "SELECT (SELECT v FROM public.jdbc_named WHERE id = 1), (SELECT v FROM jdbc_s2.jdbc_named WHERE id = 1)")) {
      rs.next();
      expect(rs.getString(1), "public", "public's row, untouched");
      expect(rs.getString(2), "s2 changed", "jdbc_s2's row, updated");
    }
    return null;
  }

  static String wrongPassword() {
    try (Connection conn = open("password", password + "-wrong")) {
      throw new AssertionError("connected with a wrong password");
    } catch (SQLException e) {
      expect(e.getSQLState(), "28P01", "SQLState of a wrong password (" + e.getMessage() + ")");
      return e.getMessage();
    }
  }

  static String simpleStatement(Connection conn) throws SQLException {
    try (Statement st = conn.createStatement();
        ResultSet rs = st.executeQuery("SELECT 1 + 1 AS two, 'herd'::text AS name")) {
      expect(rs.next(), true, "a row");
      expect(rs.getInt("two"), 2, "two");
      expect(rs.getString("name"), "herd", "name");
      expect(rs.next(), false, "only one row");
    }
    return null;
  }

  static String preparedTypes(Connection conn) throws SQLException {
    createTable(conn, "jdbc_types", "i int, b bigint, t text, n numeric, f boolean, d date, ts timestamp, z int");
    BigDecimal numeric = new BigDecimal("12345678901234567890.0123456789");
    LocalDate date = LocalDate.of(2024, 2, 29);
    LocalDateTime timestamp = LocalDateTime.of(2024, 12, 31, 23, 59, 58, 123456000);
    // non-ASCII as escapes: the source launcher reads this file in the platform's encoding
    String text = "h\u00e9llo, \u2603 'quoted' \\ \"twice\"";
    try (PreparedStatement ps = conn.prepareStatement("INSERT INTO jdbc_types VALUES (?, ?, ?, ?, ?, ?, ?, ?)")) {
      ps.setInt(1, -2147483648);
      ps.setLong(2, 9007199254740993L);
      ps.setString(3, text);
      ps.setBigDecimal(4, numeric);
      ps.setBoolean(5, true);
      ps.setObject(6, date);
      ps.setObject(7, timestamp);
      ps.setNull(8, Types.INTEGER);
      expect(ps.executeUpdate(), 1, "rows inserted");
    }
    try (PreparedStatement ps =
        conn.prepareStatement("SELECT i, b, t, n, f, d, ts, z FROM jdbc_types WHERE b = ? AND t = ? AND d = ?")) {
      ps.setLong(1, 9007199254740993L);
      ps.setString(2, text);
      ps.setObject(3, date);
      try (ResultSet rs = ps.executeQuery()) {
        expect(rs.next(), true, "the inserted row");
        expect(rs.getInt("i"), -2147483648, "int");
        expect(rs.getLong("b"), 9007199254740993L, "bigint");
        expect(rs.getString("t"), text, "text");
        expect(rs.getBigDecimal("n"), numeric, "numeric");
        expect(rs.getBoolean("f"), true, "boolean");
        expect(rs.getObject("d", LocalDate.class), date, "date");
        expect(rs.getObject("ts", LocalDateTime.class), timestamp, "timestamp");
        expect(rs.getInt("z"), 0, "null int as getInt");
        expect(rs.wasNull(), true, "wasNull after the null int");
        expect(rs.getObject("z"), null, "null int as getObject");
        expect(rs.next(), false, "only one row");
      }
    }
    // the same values as parameters straight back, without a table
    try (PreparedStatement ps = conn.prepareStatement("SELECT ?::numeric * 2, ?::boolean, ?::text IS NULL")) {
      ps.setBigDecimal(1, new BigDecimal("0.5"));
      ps.setBoolean(2, false);
      ps.setNull(3, Types.VARCHAR);
      try (ResultSet rs = ps.executeQuery()) {
        rs.next();
        expect(rs.getBigDecimal(1), new BigDecimal("1.0"), "numeric * 2");
        expect(rs.getBoolean(2), false, "false");
        expect(rs.getBoolean(3), true, "null text IS NULL");
      }
    }
    return null;
  }

  static String serverPrepare(Connection conn) throws SQLException {
    String sql = "SELECT ?::int * 2 AS doubled, ?::text AS label";
    List<Boolean> serverPrepared = new ArrayList<>();
    try (PreparedStatement ps = conn.prepareStatement(sql)) {
      for (int i = 1; i <= 10; i += 1) {
        ps.setInt(1, i);
        ps.setString(2, "run " + i);
        try (ResultSet rs = ps.executeQuery()) {
          expect(rs.next(), true, "a row on run " + i);
          expect(rs.getInt("doubled"), i * 2, "doubled on run " + i);
          expect(rs.getString("label"), "run " + i, "label on run " + i);
        }
        serverPrepared.add(((org.postgresql.PGStatement) ps).isUseServerPrepare());
      }
      expect(serverPrepared.get(0), false, "server-prepared on the first run");
      expect(serverPrepared.get(9), true, "server-prepared after 10 runs (prepareThreshold 5)");
      // pgjdbc now uses a named statement: PostgreSQL, reached through herd, lists it for this session
      try (Statement st = conn.createStatement();
          ResultSet rs =
              st.executeQuery("SELECT name FROM pg_prepared_statements WHERE statement = '"
                  + "SELECT $1::int * 2 AS doubled, $2::text AS label'")) {
        expect(rs.next(), true, "a named statement in pg_prepared_statements");
        return "isUseServerPrepare by run: " + serverPrepared + "; statement " + rs.getString(1);
      }
    }
  }

  static String commit(Connection conn) throws SQLException {
    createTable(conn, "jdbc_tx", "id int PRIMARY KEY, note text");
    conn.setAutoCommit(false);
    try (PreparedStatement ps = conn.prepareStatement("INSERT INTO jdbc_tx VALUES (?, ?)")) {
      ps.setInt(1, 1);
      ps.setString(2, "committed");
      ps.executeUpdate();
    }
    try (Connection other = open()) {
      expect(count(other, "SELECT count(*) FROM jdbc_tx WHERE id = 1"), 0, "row seen by another session before commit");
      conn.commit();
      expect(count(other, "SELECT count(*) FROM jdbc_tx WHERE id = 1"), 1, "row seen by another session after commit");
    }
    return null;
  }

  static String rollback(Connection conn) throws SQLException {
    createTable(conn, "jdbc_rollback", "id int PRIMARY KEY, note text");
    conn.setAutoCommit(false);
    try (PreparedStatement ps = conn.prepareStatement("INSERT INTO jdbc_rollback VALUES (?, ?)")) {
      ps.setInt(1, 2);
      ps.setString(2, "rolled back");
      ps.executeUpdate();
    }
    expect(count(conn, "SELECT count(*) FROM jdbc_rollback WHERE id = 2"), 1, "row seen inside its transaction");
    conn.rollback();
    expect(count(conn, "SELECT count(*) FROM jdbc_rollback WHERE id = 2"), 0, "row after rollback");
    conn.setAutoCommit(true);
    try (Connection other = open()) {
      expect(count(other, "SELECT count(*) FROM jdbc_rollback WHERE id = 2"), 0, "row seen by another session");
    }
    return null;
  }

  static String batch(Connection conn) throws SQLException {
    createTable(conn, "jdbc_batch", "id int, label text");
    try (PreparedStatement ps = conn.prepareStatement("INSERT INTO jdbc_batch VALUES (?, ?)")) {
      for (int i = 1; i <= 50; i += 1) {
        ps.setInt(1, i);
        ps.setString(2, "item " + i);
        ps.addBatch();
      }
      int[] counts = ps.executeBatch();
      expect(counts.length, 50, "update counts");
      expect(Arrays.stream(counts).allMatch(c -> c == 1), true, "every count 1 in " + Arrays.toString(counts));
    }
    expect(count(conn, "SELECT count(*) FROM jdbc_batch"), 50, "rows");
    expect(count(conn, "SELECT sum(id) FROM jdbc_batch"), 1275, "sum of ids");
    return null;
  }

  static String fetchSize(Connection conn) throws SQLException {
    // with a fetch size (and no autocommit), pgjdbc reads through a portal, 100 rows per Execute
    conn.setAutoCommit(false);
    long rows = 0;
    long sum = 0;
    try (Statement st = conn.createStatement()) {
      st.setFetchSize(100);
      try (ResultSet rs = st.executeQuery("SELECT g FROM generate_series(1, 10000) g")) {
        while (rs.next()) {
          rows += 1;
          sum += rs.getLong(1);
          // another statement while the portal is open
          if (rows == 5000) expect(count(conn, "SELECT 5000"), 5000, "a query between fetches");
        }
      }
    }
    conn.commit();
    expect(rows, 10000L, "rows");
    expect(sum, 50005000L, "sum");
    return null;
  }

  static String errorSqlState(Connection conn) throws SQLException {
    String states = "";
    try (Statement st = conn.createStatement()) {
      st.executeQuery("SELECT * FROM jdbc_no_such_table");
      throw new AssertionError("a missing table raised no error");
    } catch (SQLException e) {
      expect(e.getSQLState(), "42P01", "SQLState of a missing table (" + e.getMessage() + ")");
      states += e.getSQLState();
    }
    try (PreparedStatement ps = conn.prepareStatement("SELECT 1 / ?")) {
      ps.setInt(1, 0);
      ps.executeQuery();
      throw new AssertionError("a division by zero raised no error");
    } catch (SQLException e) {
      expect(e.getSQLState(), "22012", "SQLState of a division by zero (" + e.getMessage() + ")");
      states += " " + e.getSQLState();
    }
    try (Statement st = conn.createStatement()) {
      st.execute("SELEC 1");
      throw new AssertionError("a syntax error raised no error");
    } catch (org.postgresql.util.PSQLException e) {
      expect(e.getSQLState(), "42601", "SQLState of a syntax error (" + e.getMessage() + ")");
      expect(e.getServerErrorMessage().getPosition(), 1, "position of the syntax error");
      states += " " + e.getSQLState();
    }
    expect(count(conn, "SELECT 42"), 42, "a query after the errors");
    return states;
  }

  static String errorInTransaction(Connection conn) throws SQLException {
    conn.setAutoCommit(false);
    try (Statement st = conn.createStatement()) {
      st.execute("SELECT * FROM jdbc_no_such_table");
      throw new AssertionError("a missing table raised no error");
    } catch (SQLException e) {
      expect(e.getSQLState(), "42P01", "SQLState of a missing table");
    }
    try (Statement st = conn.createStatement()) {
      st.execute("SELECT 1");
      throw new AssertionError("a statement in an aborted transaction raised no error");
    } catch (SQLException e) {
      expect(e.getSQLState(), "25P02", "SQLState in an aborted transaction (" + e.getMessage() + ")");
    }
    conn.rollback();
    expect(count(conn, "SELECT 7"), 7, "a query after the rollback");
    conn.commit();
    return null;
  }

  static String cancel(Connection conn) throws SQLException {
    // pgjdbc sends a CancelRequest on a new connection when the timeout expires
    try (Statement st = conn.createStatement()) {
      st.setQueryTimeout(1);
      st.execute("SELECT pg_sleep(30)");
      throw new AssertionError("a statement past its timeout was not cancelled");
    } catch (SQLException e) {
      expect(e.getSQLState(), "57014", "SQLState of a cancelled statement (" + e.getMessage() + ")");
    }
    expect(count(conn, "SELECT 8"), 8, "a query after the cancel");
    return null;
  }

  static String metadata(Connection conn) throws SQLException {
    createTable(conn, "jdbc_meta", "id bigint PRIMARY KEY, name varchar(40) NOT NULL");
    DatabaseMetaData meta = conn.getMetaData();
    try (ResultSet rs = meta.getTables(null, "public", "jdbc_meta", new String[] {"TABLE"})) {
      expect(rs.next(), true, "jdbc_meta among the tables");
      expect(rs.getString("TABLE_NAME"), "jdbc_meta", "TABLE_NAME");
      expect(rs.getString("TABLE_TYPE"), "TABLE", "TABLE_TYPE");
      expect(rs.next(), false, "one table");
    }
    List<String> columns = new ArrayList<>();
    try (ResultSet rs = meta.getColumns(null, "public", "jdbc_meta", null)) {
      while (rs.next()) {
        columns.add(rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME") + " " + rs.getString("IS_NULLABLE"));
      }
    }
    expect(columns, List.of("id int8 NO", "name varchar NO"), "columns");
    try (ResultSet rs = meta.getPrimaryKeys(null, "public", "jdbc_meta")) {
      expect(rs.next(), true, "a primary key");
      expect(rs.getString("COLUMN_NAME"), "id", "primary key column");
    }
    return String.join(", ", columns);
  }

  static String json(String text) {
    StringBuilder out = new StringBuilder("\"");
    for (char c : text.toCharArray()) {
      switch (c) {
        case '"' -> out.append("\\\"");
        case '\\' -> out.append("\\\\");
        case '\n' -> out.append("\\n");
        case '\r' -> out.append("\\r");
        case '\t' -> out.append("\\t");
        default -> {
          // ASCII only, whatever the platform's encoding of stdout
          if (c < 0x20 || c > 0x7e) out.append(String.format("\\u%04x", (int) c));
          else out.append(c);
        }
      }
    }
    return out.append('"').toString();
  }
}
