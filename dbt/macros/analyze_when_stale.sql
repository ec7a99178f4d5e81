{# ANALYZE an incremental model's table on PostgreSQL when it has no statistics yet or
   has grown by a tenth since they were taken (its file against the pages the last
   ANALYZE counted; inside the run's transaction, where the activity counters lag),
   so the models after it plan their batch on real numbers. Batches are read as
   `loaded_at > <mark>`: a mark past the statistics' end is estimated from the index,
   but only where they hold a histogram, and a table of a few loads holds only common
   values (14 loads: 14 values), for which any new batch is "1 row" and joins become
   nested loops over 600,000 rows. ANALYZE after every run instead cost 0.2-0.7 s a
   table on millions of rows, every few seconds; autovacuum may be off (it is on the
   machine these benchmarks ran on). #}
{% macro analyze_when_stale() -%}
    {%- if target.type == 'postgres' and model.config.materialized == 'incremental' -%}
        do $$
        begin
            if exists (
                select 1 from pg_class as c
                where c.oid = '{{ this }}'::regclass
                    and (
                        not exists (select 1 from pg_statistic as s where s.starelid = c.oid)
                        or pg_relation_size(c.oid) > 1.1 * greatest(c.relpages, 1) * current_setting('block_size')::int
                    )
            ) then
                analyze {{ this }};
            end if;
        end
        $$
    {%- endif -%}
{%- endmacro %}
