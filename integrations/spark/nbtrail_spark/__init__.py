"""nbtrail on Spark: the organisation-wide job (:mod:`nbtrail_spark.job`) and cutting a desktop case from
its output (:mod:`nbtrail_spark.cut`)."""
