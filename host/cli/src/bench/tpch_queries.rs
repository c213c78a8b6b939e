//! The 22 TPC-H queries (TPC-H specification 3.0.1, clause 2.4) with the specification's
//! validation substitution parameters, as the same SQL text for every engine. Three
//! changes of form, none of meaning: joins are written `JOIN ... ON` instead of a comma
//! list with the join conditions in WHERE (the room's query rules judge a join by its ON
//! equality, docs/privacy.md); date arithmetic is written out as the date it evaluates to
//! (`date '1998-12-01' - interval '90' day` is `date '1998-09-02'`); Q15's view is a common
//! table expression (a workload is one query; the room runs no DDL). Subqueries stay as the
//! specification writes them.

/// Query `n` (1-22): its SQL and the tables it reads (a workload's `inputs`).
#[derive(Debug)]
pub struct Query {
    pub n: u8,
    pub tables: &'static [&'static str],
    pub sql: &'static str,
}

pub const QUERIES: [Query; 22] = [
    Query {
        n: 1,
        tables: &["lineitem"],
        sql: "select l_returnflag, l_linestatus, sum(l_quantity) as sum_qty,
  sum(l_extendedprice) as sum_base_price,
  sum(l_extendedprice * (1 - l_discount)) as sum_disc_price,
  sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) as sum_charge,
  avg(l_quantity) as avg_qty, avg(l_extendedprice) as avg_price, avg(l_discount) as avg_disc,
  count(*) as count_order
from lineitem
where l_shipdate <= date '1998-09-02'
group by l_returnflag, l_linestatus
order by l_returnflag, l_linestatus",
    },
    Query {
        n: 2,
        tables: &["part", "supplier", "partsupp", "nation", "region"],
        sql: "select s_acctbal, s_name, n_name, p_partkey, p_mfgr, s_address, s_phone, s_comment
from part join partsupp on p_partkey = ps_partkey join supplier on s_suppkey = ps_suppkey
  join nation on s_nationkey = n_nationkey join region on n_regionkey = r_regionkey
where p_size = 15 and p_type like '%BRASS' and r_name = 'EUROPE'
  and ps_supplycost = (
    select min(ps_supplycost)
    from partsupp join supplier on s_suppkey = ps_suppkey
      join nation on s_nationkey = n_nationkey join region on n_regionkey = r_regionkey
    where p_partkey = ps_partkey and r_name = 'EUROPE')
order by s_acctbal desc, n_name, s_name, p_partkey
limit 100",
    },
    Query {
        n: 3,
        tables: &["customer", "orders", "lineitem"],
        sql: "select l_orderkey, sum(l_extendedprice * (1 - l_discount)) as revenue, o_orderdate,
  o_shippriority
from customer join orders on c_custkey = o_custkey join lineitem on l_orderkey = o_orderkey
where c_mktsegment = 'BUILDING'
  and o_orderdate < date '1995-03-15' and l_shipdate > date '1995-03-15'
group by l_orderkey, o_orderdate, o_shippriority
order by revenue desc, o_orderdate
limit 10",
    },
    Query {
        n: 4,
        tables: &["orders", "lineitem"],
        sql: "select o_orderpriority, count(*) as order_count
from orders
where o_orderdate >= date '1993-07-01' and o_orderdate < date '1993-10-01'
  and exists (select * from lineitem where l_orderkey = o_orderkey and l_commitdate < l_receiptdate)
group by o_orderpriority
order by o_orderpriority",
    },
    Query {
        n: 5,
        tables: &["customer", "orders", "lineitem", "supplier", "nation", "region"],
        sql: "select n_name, sum(l_extendedprice * (1 - l_discount)) as revenue
from customer join orders on c_custkey = o_custkey join lineitem on l_orderkey = o_orderkey
  join supplier on l_suppkey = s_suppkey and c_nationkey = s_nationkey
  join nation on s_nationkey = n_nationkey join region on n_regionkey = r_regionkey
where r_name = 'ASIA' and o_orderdate >= date '1994-01-01' and o_orderdate < date '1995-01-01'
group by n_name
order by revenue desc",
    },
    Query {
        n: 6,
        tables: &["lineitem"],
        sql: "select sum(l_extendedprice * l_discount) as revenue
from lineitem
where l_shipdate >= date '1994-01-01' and l_shipdate < date '1995-01-01'
  and l_discount between 0.05 and 0.07 and l_quantity < 24",
    },
    Query {
        n: 7,
        tables: &["supplier", "lineitem", "orders", "customer", "nation"],
        sql: "select supp_nation, cust_nation, l_year, sum(volume) as revenue
from (
  select n1.n_name as supp_nation, n2.n_name as cust_nation,
    extract(year from l_shipdate) as l_year, l_extendedprice * (1 - l_discount) as volume
  from supplier join lineitem on s_suppkey = l_suppkey join orders on o_orderkey = l_orderkey
    join customer on c_custkey = o_custkey join nation n1 on s_nationkey = n1.n_nationkey
    join nation n2 on c_nationkey = n2.n_nationkey
  where ((n1.n_name = 'FRANCE' and n2.n_name = 'GERMANY')
      or (n1.n_name = 'GERMANY' and n2.n_name = 'FRANCE'))
    and l_shipdate between date '1995-01-01' and date '1996-12-31') as shipping
group by supp_nation, cust_nation, l_year
order by supp_nation, cust_nation, l_year",
    },
    Query {
        n: 8,
        tables: &["part", "supplier", "lineitem", "orders", "customer", "nation", "region"],
        sql: "select o_year, sum(case when nation = 'BRAZIL' then volume else 0 end) / sum(volume) as mkt_share
from (
  select extract(year from o_orderdate) as o_year,
    l_extendedprice * (1 - l_discount) as volume, n2.n_name as nation
  from part join lineitem on p_partkey = l_partkey join supplier on s_suppkey = l_suppkey
    join orders on l_orderkey = o_orderkey join customer on o_custkey = c_custkey
    join nation n1 on c_nationkey = n1.n_nationkey join region on n1.n_regionkey = r_regionkey
    join nation n2 on s_nationkey = n2.n_nationkey
  where r_name = 'AMERICA'
    and o_orderdate between date '1995-01-01' and date '1996-12-31'
    and p_type = 'ECONOMY ANODIZED STEEL') as all_nations
group by o_year
order by o_year",
    },
    Query {
        n: 9,
        tables: &["part", "supplier", "lineitem", "partsupp", "orders", "nation"],
        sql: "select nation, o_year, sum(amount) as sum_profit
from (
  select n_name as nation, extract(year from o_orderdate) as o_year,
    l_extendedprice * (1 - l_discount) - ps_supplycost * l_quantity as amount
  from part join lineitem on p_partkey = l_partkey join supplier on s_suppkey = l_suppkey
    join partsupp on ps_suppkey = l_suppkey and ps_partkey = l_partkey
    join orders on o_orderkey = l_orderkey join nation on s_nationkey = n_nationkey
  where p_name like '%green%') as profit
group by nation, o_year
order by nation, o_year desc",
    },
    Query {
        n: 10,
        tables: &["customer", "orders", "lineitem", "nation"],
        sql: "select c_custkey, c_name, sum(l_extendedprice * (1 - l_discount)) as revenue, c_acctbal,
  n_name, c_address, c_phone, c_comment
from customer join orders on c_custkey = o_custkey join lineitem on l_orderkey = o_orderkey
  join nation on c_nationkey = n_nationkey
where o_orderdate >= date '1993-10-01' and o_orderdate < date '1994-01-01'
  and l_returnflag = 'R'
group by c_custkey, c_name, c_acctbal, c_phone, n_name, c_address, c_comment
order by revenue desc
limit 20",
    },
    Query {
        n: 11,
        tables: &["partsupp", "supplier", "nation"],
        sql: "select ps_partkey, sum(ps_supplycost * ps_availqty) as value
from partsupp join supplier on ps_suppkey = s_suppkey join nation on s_nationkey = n_nationkey
where n_name = 'GERMANY'
group by ps_partkey
having sum(ps_supplycost * ps_availqty) > (
  select sum(ps_supplycost * ps_availqty) * 0.0001
  from partsupp join supplier on ps_suppkey = s_suppkey join nation on s_nationkey = n_nationkey
  where n_name = 'GERMANY')
order by value desc",
    },
    Query {
        n: 12,
        tables: &["orders", "lineitem"],
        sql: "select l_shipmode,
  sum(case when o_orderpriority = '1-URGENT' or o_orderpriority = '2-HIGH' then 1 else 0 end) as high_line_count,
  sum(case when o_orderpriority <> '1-URGENT' and o_orderpriority <> '2-HIGH' then 1 else 0 end) as low_line_count
from orders join lineitem on o_orderkey = l_orderkey
where l_shipmode in ('MAIL', 'SHIP')
  and l_commitdate < l_receiptdate and l_shipdate < l_commitdate
  and l_receiptdate >= date '1994-01-01' and l_receiptdate < date '1995-01-01'
group by l_shipmode
order by l_shipmode",
    },
    Query {
        n: 13,
        tables: &["customer", "orders"],
        sql: "select c_count, count(*) as custdist
from (
  select c_custkey, count(o_orderkey) as c_count
  from customer left outer join orders
    on c_custkey = o_custkey and o_comment not like '%special%requests%'
  group by c_custkey) as c_orders
group by c_count
order by custdist desc, c_count desc",
    },
    Query {
        n: 14,
        tables: &["lineitem", "part"],
        sql: "select 100.00 * sum(case when p_type like 'PROMO%' then l_extendedprice * (1 - l_discount) else 0 end)
  / sum(l_extendedprice * (1 - l_discount)) as promo_revenue
from lineitem join part on l_partkey = p_partkey
where l_shipdate >= date '1995-09-01' and l_shipdate < date '1995-10-01'",
    },
    Query {
        n: 15,
        tables: &["lineitem", "supplier"],
        sql: "with revenue0 as (
  select l_suppkey as supplier_no, sum(l_extendedprice * (1 - l_discount)) as total_revenue
  from lineitem
  where l_shipdate >= date '1996-01-01' and l_shipdate < date '1996-04-01'
  group by l_suppkey)
select s_suppkey, s_name, s_address, s_phone, total_revenue
from supplier join revenue0 on s_suppkey = supplier_no
where total_revenue = (select max(total_revenue) from revenue0)
order by s_suppkey",
    },
    Query {
        n: 16,
        tables: &["partsupp", "part", "supplier"],
        sql: "select p_brand, p_type, p_size, count(distinct ps_suppkey) as supplier_cnt
from partsupp join part on p_partkey = ps_partkey
where p_brand <> 'Brand#45' and p_type not like 'MEDIUM POLISHED%'
  and p_size in (49, 14, 23, 45, 19, 3, 36, 9)
  and ps_suppkey not in (select s_suppkey from supplier where s_comment like '%Customer%Complaints%')
group by p_brand, p_type, p_size
order by supplier_cnt desc, p_brand, p_type, p_size",
    },
    Query {
        n: 17,
        tables: &["lineitem", "part"],
        sql: "select sum(l_extendedprice) / 7.0 as avg_yearly
from lineitem join part on p_partkey = l_partkey
where p_brand = 'Brand#23' and p_container = 'MED BOX'
  and l_quantity < (select 0.2 * avg(l_quantity) from lineitem where l_partkey = p_partkey)",
    },
    Query {
        n: 18,
        tables: &["customer", "orders", "lineitem"],
        sql: "select c_name, c_custkey, o_orderkey, o_orderdate, o_totalprice, sum(l_quantity) as sum_qty
from customer join orders on c_custkey = o_custkey join lineitem on o_orderkey = l_orderkey
where o_orderkey in (
    select l_orderkey from lineitem group by l_orderkey having sum(l_quantity) > 300)
group by c_name, c_custkey, o_orderkey, o_orderdate, o_totalprice
order by o_totalprice desc, o_orderdate
limit 100",
    },
    Query {
        n: 19,
        tables: &["lineitem", "part"],
        sql: "select sum(l_extendedprice * (1 - l_discount)) as revenue
from lineitem join part on p_partkey = l_partkey
where (p_brand = 'Brand#12'
    and p_container in ('SM CASE', 'SM BOX', 'SM PACK', 'SM PKG')
    and l_quantity >= 1 and l_quantity <= 11 and p_size between 1 and 5
    and l_shipmode in ('AIR', 'AIR REG') and l_shipinstruct = 'DELIVER IN PERSON')
  or (p_brand = 'Brand#23'
    and p_container in ('MED BAG', 'MED BOX', 'MED PKG', 'MED PACK')
    and l_quantity >= 10 and l_quantity <= 20 and p_size between 1 and 10
    and l_shipmode in ('AIR', 'AIR REG') and l_shipinstruct = 'DELIVER IN PERSON')
  or (p_brand = 'Brand#34'
    and p_container in ('LG CASE', 'LG BOX', 'LG PACK', 'LG PKG')
    and l_quantity >= 20 and l_quantity <= 30 and p_size between 1 and 15
    and l_shipmode in ('AIR', 'AIR REG') and l_shipinstruct = 'DELIVER IN PERSON')",
    },
    Query {
        n: 20,
        tables: &["supplier", "nation", "partsupp", "part", "lineitem"],
        sql: "select s_name, s_address
from supplier join nation on s_nationkey = n_nationkey
where s_suppkey in (
    select ps_suppkey from partsupp
    where ps_partkey in (select p_partkey from part where p_name like 'forest%')
      and ps_availqty > (
        select 0.5 * sum(l_quantity) from lineitem
        where l_partkey = ps_partkey and l_suppkey = ps_suppkey
          and l_shipdate >= date '1994-01-01' and l_shipdate < date '1995-01-01'))
  and n_name = 'CANADA'
order by s_name",
    },
    Query {
        n: 21,
        tables: &["supplier", "lineitem", "orders", "nation"],
        sql: "select s_name, count(*) as numwait
from supplier join lineitem l1 on s_suppkey = l1.l_suppkey
  join orders on o_orderkey = l1.l_orderkey join nation on s_nationkey = n_nationkey
where o_orderstatus = 'F'
  and l1.l_receiptdate > l1.l_commitdate
  and exists (
    select * from lineitem l2
    where l2.l_orderkey = l1.l_orderkey and l2.l_suppkey <> l1.l_suppkey)
  and not exists (
    select * from lineitem l3
    where l3.l_orderkey = l1.l_orderkey and l3.l_suppkey <> l1.l_suppkey
      and l3.l_receiptdate > l3.l_commitdate)
  and n_name = 'SAUDI ARABIA'
group by s_name
order by numwait desc, s_name
limit 100",
    },
    Query {
        n: 22,
        tables: &["customer", "orders"],
        sql: "select cntrycode, count(*) as numcust, sum(c_acctbal) as totacctbal
from (
  select substring(c_phone from 1 for 2) as cntrycode, c_acctbal
  from customer
  where substring(c_phone from 1 for 2) in ('13', '31', '23', '29', '30', '18', '17')
    and c_acctbal > (
      select avg(c_acctbal) from customer
      where c_acctbal > 0.00
        and substring(c_phone from 1 for 2) in ('13', '31', '23', '29', '30', '18', '17'))
    and not exists (select * from orders where o_custkey = c_custkey)) as custsale
group by cntrycode
order by cntrycode",
    },
];
